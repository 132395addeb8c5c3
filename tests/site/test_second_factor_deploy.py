"""`check --deploy` refuses the demo's public authenticator secret (marketplace.E005)."""

from tests.site.test_settings import PRODUCTION, _check_deploy


def test_manage_check_deploy_fails_with_the_demo_totp_secret():
    # given production settings with the demo's authenticator secret set
    result = _check_deploy(**PRODUCTION, MARKETPLACE_DEMO_TOTP_SECRET="DEMOTOTPDEMOTOTPDEMOTOTPDEMOTOTP")
    # then the deployment checklist fails with an error naming the setting
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "marketplace.E005" in output and "MARKETPLACE_DEMO_TOTP_SECRET is set" in output
