"""Login throttling (django-axes): a username+address pair is locked after 5 failed logins."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

PASSWORD = "the-right-password-for-tests"
LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("staff", password=PASSWORD)


def log_in(page: str, *, password: str, address: str = "198.51.100.1", username: str = "staff"):
    client = Client(REMOTE_ADDR=address)
    return client.post(page, {"username": username, "password": password, "next": "/"})


def fail(page: str, times: int, **kwargs) -> list[int]:
    return [log_in(page, password="wrong", **kwargs).status_code for _ in range(times)]


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_right_password_is_refused_after_the_failure_limit(staff, page):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert fail(page, 5) == [200] * 4 + [429]  # the 5th failure locks
    response = log_in(page, password=PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body and "15 minutes" in body
    assert "<script" not in body and "Content-Security-Policy" in response


def test_both_login_pages_count_together(staff):
    fail("/accounts/login/", 3)
    assert fail("/admin/login/", 2) == [200, 429]


def test_the_same_user_from_another_address_still_logs_in(staff):
    fail("/accounts/login/", 5)
    assert log_in("/accounts/login/", password=PASSWORD, address="198.51.100.2").status_code == 302


def test_another_user_from_the_same_address_still_logs_in(staff):
    User.objects.create_user("viewer", password=PASSWORD)
    fail("/accounts/login/", 5)
    assert log_in("/accounts/login/", password=PASSWORD, username="viewer").status_code == 302


def test_a_success_before_the_limit_forgets_the_failures(staff):
    fail("/accounts/login/", 4)
    assert log_in("/accounts/login/", password=PASSWORD).status_code == 302
    assert fail("/accounts/login/", 4) == [200] * 4


def test_staff_unlock_with_axes_reset_username(staff):
    fail("/admin/login/", 5)
    call_command("axes_reset_username", "staff", verbosity=0)
    assert log_in("/admin/login/", password=PASSWORD).status_code == 302
