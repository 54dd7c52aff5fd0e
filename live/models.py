from django.db import models
from django.urls import reverse


def can_view_private_boards(user) -> bool:
    return user is not None and user.is_authenticated and user.has_perm("live.view_private_board")


class BoardQuerySet(models.QuerySet):
    def visible_to(self, user) -> "BoardQuerySet":
        """The boards `user` may watch: every public board, and private ones with permission."""
        if can_view_private_boards(user):
            return self
        return self.filter(is_public=True)


class Board(models.Model):
    """A scoreboard that spectators watch; `version` counts its committed change-sets.

    A private board (is_public off) is shown only to logged-in users with the permission
    `live.view_private_board` (superusers have every permission); to anyone else it is 403.
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    is_public = models.BooleanField(
        "public", default=True, help_text="Off: only users allowed to view private boards see it."
    )
    # Bumped only by live.broadcast, one step per committed change-set (never by save()).
    version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BoardQuerySet.as_manager()

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
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("live:board", kwargs={"slug": self.slug})

    def is_visible_to(self, user) -> bool:
        return self.is_public or can_view_private_boards(user)

    @property
    def group_name(self) -> str:
        return self.group_name_for(self.pk)

    @staticmethod
    def group_name_for(board_id: int) -> str:
        """The channel-layer group of a board's spectators (by id, so a slug can change)."""
        return f"board-{board_id}"


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

    @classmethod
    def from_db(cls, db, field_names, values, *args, **kwargs):
        instance = super().from_db(db, field_names, values, *args, **kwargs)
        # Remembered so that moving a player to another board also updates the old board.
        instance.loaded_board_id = instance.__dict__.get("board_id")
        return instance
