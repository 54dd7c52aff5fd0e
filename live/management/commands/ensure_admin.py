import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

CREDENTIALS_FILE = Path(settings.BASE_DIR) / ".admin-credentials"


class Command(BaseCommand):
    help = (
        "Make sure an admin login exists and print how to log in. The password comes from "
        "DJANGO_SUPERUSER_PASSWORD, or is generated once and kept in .admin-credentials."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default=os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin"))
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/")

    def handle(self, *args, username: str, url: str, **options) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username, defaults={"is_staff": True, "is_superuser": True}
        )
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or self.saved_password(user)
        if password is None and not created and user.has_usable_password():
            self.stdout.write(
                f"Admin: {url}  user: {username}  password: unchanged "
                "(set DJANGO_SUPERUSER_PASSWORD to reset it)"
            )
            return
        if password is None:
            password = secrets.token_urlsafe(12)
            CREDENTIALS_FILE.write_text(f"{username}\n{password}\n")
            CREDENTIALS_FILE.chmod(0o600)
        if not user.check_password(password) or not user.is_staff:
            user.set_password(password)
            user.is_staff = user.is_superuser = True
            user.save()
        self.stdout.write(f"Admin: {url}  user: {username}  password: {password}")

    def saved_password(self, user) -> str | None:
        """The generated password, if the file still matches this user."""
        try:
            saved_user, password = CREDENTIALS_FILE.read_text().split()[:2]
        except (OSError, ValueError):
            return None
        if saved_user == user.username and (not user.has_usable_password() or user.check_password(password)):
            return password
        return None
