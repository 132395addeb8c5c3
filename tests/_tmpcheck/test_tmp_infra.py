import pytest
from django.db import connection


@pytest.mark.django_db
def test_postgres_backend():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cur:
        cur.execute("show fsync")
        assert cur.fetchone()[0] == "off"


@pytest.mark.django_db
def test_user_model():
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.count() >= 0
