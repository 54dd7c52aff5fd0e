from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from live.delivery.frames import InvalidMemberMessage
from live.delivery.publish import reaches_other_processes, relay_to_member


class Command(BaseCommand):
    help = "Show a notice on every open page of one user, in every server process (needs REDIS_URL)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, metavar="USERNAME", help="who gets the notice")
        parser.add_argument("text", help="the notice, 1 to 1000 characters of plain text")

    def handle(self, *args, user: str, text: str, **options) -> None:
        # This command is a process of its own: an in-memory channel layer reaches no server.
        if not reaches_other_processes():
            raise CommandError(
                "The channel layer is in-memory (no REDIS_URL): a notice sent from this process "
                "cannot reach the server's sockets. Set REDIS_URL (and CHANNEL_LAYER) as the "
                "servers have them."
            )
        username_field = get_user_model().USERNAME_FIELD
        member = get_user_model().objects.filter(**{username_field: user}).first()
        if member is None:
            raise CommandError(f"No user named {user!r}.")
        try:
            sent = relay_to_member(user_id=member.pk, event="notice", payload={"text": text})
        except InvalidMemberMessage as error:
            raise CommandError(f"Not a valid notice: {error}.") from None
        if not sent:
            raise CommandError("The channel layer is unreachable; the notice was not sent (see the log).")
        self.stdout.write(f"Notice sent to {user}'s open pages.")
