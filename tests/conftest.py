import pytest

from marketplace.payments.gateway import SandboxGateway

# Sign-in support for tests: throttled sign-in (tests/plugins/signin.py) and the second factor a
# staff test client carries (tests/plugins/second_factor.py).
pytest_plugins = ["tests.plugins.signin", "tests.plugins.second_factor"]


@pytest.fixture(autouse=True)
def sandbox_gateway():
    """A clean sandbox gateway per test: no injected failures, no remembered keys."""
    SandboxGateway.reset()
    yield SandboxGateway
    SandboxGateway.reset()


@pytest.fixture
def staff_groups(db):
    from marketplace.accounts.services import staff_groups_ensure

    return staff_groups_ensure()


@pytest.fixture
def make_staff(staff_groups):
    """make_staff("Operations agent") -> an active staff user in that group."""
    from tests.factories import StaffFactory

    def make(*group_names, **kwargs):
        return StaffFactory(groups=list(group_names), **kwargs)

    return make
