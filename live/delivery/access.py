"""Access to private boards that may have ended: which users, told to their sockets after commit.

The model signal handlers of live/signals.py call in here when a user is saved (deactivated,
a new password, superuser status), deleted, loses permissions or groups (or a group loses
permissions or is deleted), or logs out. After the commit, each affected user's relays are told to check
that user's sockets again (live/delivery/members.py decides, with one database read).

During a request the events wait until the response is ready (`AccessEventsMiddleware`):
a logout deletes its session, and a password change gives the session that made it a new
key, only after the write. Sent then, the check sees the final state, and the sockets of
the session that changed its key follow it, as Django keeps that session logged in.
"""

import contextvars
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from live.delivery import publish

# Fields whose change can end a user's access (a save naming none of them cannot).
ACCESS_FIELDS = frozenset({"is_active", "password", "is_superuser"})

# The user ids whose access changed during the current request, sent when it is answered.
_pending: contextvars.ContextVar[set[int] | None] = contextvars.ContextVar("live_access", default=None)


def user_saved(*, user, created: bool, update_fields: Iterable[str] | None, using: str) -> None:
    if not created and (update_fields is None or ACCESS_FIELDS & set(update_fields)):
        changed(user_ids=[user.pk], using=using)


def user_deleted(*, user, using: str) -> None:
    changed(user_ids=[user.pk], using=using)


def group_deleting(*, group, using: str) -> None:
    """Deleting a group removes its members without an m2m_changed signal."""
    members = get_user_model().groups.through.objects.filter(group_id=group.pk)
    changed(user_ids=members.values_list("user_id", flat=True), using=using)


def logged_out(*, user) -> None:
    if user is not None and user.pk is not None:
        changed(user_ids=[user.pk], using=None)


def relations_changed(
    *, through, instance, action: str, reverse: bool, pk_set: set | None, using: str
) -> None:
    """A user's permissions or groups, or a group's permissions, lost members (m2m_changed).

    Additions only grant, so only removals count; a clear names no ids afterwards, so it is
    read before it happens.
    """
    if action not in ("post_remove", "pre_clear"):
        return
    changed(user_ids=users_losing(through, instance, reverse, pk_set), using=using)


def users_losing(through, instance, reverse: bool, pk_set: set | None) -> set[int]:
    """The users whose permissions a removal from `instance`'s relation can take away."""
    user_model = get_user_model()
    memberships = user_model.groups.through.objects
    if through is Group.permissions.through:
        if not reverse:  # group.permissions.remove(...): everyone in the group
            groups = [instance.pk]
        elif pk_set is not None:  # permission.group_set.remove(groups...)
            groups = list(pk_set)
        else:  # permission.group_set.clear()
            holders = through.objects.filter(permission_id=instance.pk)
            groups = list(holders.values_list("group_id", flat=True))
        return set(memberships.filter(group_id__in=groups).values_list("user_id", flat=True))
    if not reverse:  # user.user_permissions / user.groups
        return {instance.pk}
    if pk_set is not None:  # permission.user_set.remove(users...) / group.user_set.remove(users...)
        return set(pk_set)
    # permission.user_set.clear() / group.user_set.clear()
    column = "permission_id" if through is user_model.user_permissions.through else "group_id"
    return set(through.objects.filter(**{column: instance.pk}).values_list("user_id", flat=True))


def changed(*, user_ids: Iterable[int], using: str | None) -> None:
    """After the commit, have these users' sockets checked again."""
    user_ids = set(user_ids)
    if user_ids:
        transaction.on_commit(lambda: _send(user_ids), using=using)


def _send(user_ids: set[int]) -> None:
    pending = _pending.get()
    if pending is not None:
        pending.update(user_ids)  # sent by the middleware, with the request's session settled
    else:
        publish.relay_access_changed(user_ids=user_ids)


class AccessEventsMiddleware:
    """Sends the access events of a request once its response is ready and its session saved.

    Listed before SessionMiddleware, so its response phase runs after the session's.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        pending: set[int] = set()
        token = _pending.set(pending)
        key_before = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        try:
            response = self.get_response(request)
        finally:
            _pending.reset(token)
        if pending:
            key_after = getattr(getattr(request, "session", None), "session_key", None)
            moved = {}
            if key_before and key_after and key_after != key_before:
                # The same session under a new key (a password change cycles it): its
                # sockets follow it, and its user's are checked too.
                moved = {key_before: key_after}
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated:
                    pending.add(user.pk)
            publish.relay_access_changed(user_ids=pending, moved=moved)
        return response
