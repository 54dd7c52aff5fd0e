from django.conf import settings
from django.db import models, router, transaction
from django.urls import reverse
from django.utils import timezone


class Board(models.Model):
    """A scoreboard that spectators watch; `version` counts its committed change-sets.

    Who may see a private board (is_public off) is decided in live/scores/selectors.py.
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    is_public = models.BooleanField(
        "public", default=True, help_text="Off: only users allowed to view private boards see it."
    )
    # Bumped only by live/scores/changes.py, one step per committed change-set (never by save()).
    version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("view_private_board", "Can view private boards")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # A form or script holding a stale copy must never write an old version back.
        if self.pk is not None and not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "version"
            ]
        # The change, its version and its record commit together (live/scores/changes.py).
        with transaction.atomic(using=kwargs.get("using") or router.db_for_write(Board, instance=self)):
            super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("live:board", kwargs={"slug": self.slug})

    @property
    def group_name(self) -> str:
        return self.group_name_for(self.pk)

    @staticmethod
    def group_name_for(board_id: int) -> str:
        """The channel-layer group of a board's spectators (by id, so a slug can change)."""
        return f"board-{board_id}"


def member_group_name(user_id: int) -> str:
    """The channel-layer group of one user's sockets: one member per server process holding any."""
    return f"member-{user_id}"


class Player(models.Model):
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="players")
    name = models.CharField(max_length=100)
    score = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-score", "name"]
        constraints = [models.UniqueConstraint(fields=["board", "name"], name="unique_player_name_per_board")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # The change, its version and its record commit together (live/scores/changes.py).
        with transaction.atomic(using=kwargs.get("using") or router.db_for_write(Player, instance=self)):
            super().save(*args, **kwargs)

    @classmethod
    def from_db(cls, db, field_names, values, *args, **kwargs):
        instance = super().from_db(db, field_names, values, *args, **kwargs)
        # Remembered so that moving a player to another board also updates the old board.
        instance.loaded_board_id = instance.__dict__.get("board_id")
        return instance


class Change(models.Model):
    """One committed change-set of a board: its version, who made it, through what, and when.

    Written in the writer's own transaction, together with the data and the version bump,
    by live/scores/changes.py: there is no version without its record and no record
    without its version.
    """

    class Source(models.TextChoices):
        FORM = "form"
        LIST = "list"
        INLINE = "inline"
        ACTION = "action"
        IMPORT = "import"
        UNDO = "undo"
        SIMULATE = "simulate"
        SCRIPT = "script"

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="changes")
    version = models.PositiveBigIntegerField()
    at = models.DateTimeField(default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SCRIPT)
    # The board's own fields this change-set changed: {"name": [old, new], "is_public": [...]}.
    board_fields = models.JSONField(default=dict, blank=True)
    # For an undo (live/scores/undo.py): the version of the change-set it undid.
    undoes = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["board", "-version"]
        constraints = [models.UniqueConstraint(fields=["board", "version"], name="one_change_per_version")]

    def __str__(self) -> str:
        return f"{self.board_id} v{self.version}"


class PlayerChange(models.Model):
    """A player's values before and after one change-set (None before: added; after: removed)."""

    change = models.ForeignKey(Change, on_delete=models.CASCADE, related_name="players")
    # Not a foreign key: the record of a removed player outlives the player.
    player_id = models.BigIntegerField(db_index=True)
    # NULL (not "") means absent: the player was added or removed by this change-set.
    name_before = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    name_after = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    score_before = models.IntegerField(null=True, blank=True)
    score_after = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["change", "player_id"]
        constraints = [
            models.UniqueConstraint(fields=["change", "player_id"], name="one_entry_per_player_and_change")
        ]

    def __str__(self) -> str:
        return f"player {self.player_id}: {self.score_before} -> {self.score_after}"
