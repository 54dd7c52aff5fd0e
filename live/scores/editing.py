"""No lost edits: admin forms write only what their user changed, never over someone else's change.

Every field of an `EditForm` is rendered with a hidden copy of the value the page showed
(Django's `show_hidden_initial`: an `initial-<name>` input). On submit a field counts as
changed when the posted value differs from that original, not from the row as it is now:
fields and rows the user did not touch are never written, even if the database moved
since the page was loaded.

A field the user changed that someone else changed meanwhile is a conflict: the form gets
an error naming who changed it, to what and when (from the change records), so the whole
submit is refused and nothing is saved. The page comes back with the user's values and
the current ones as its new originals: saving again is a deliberate overwrite.

The check and the write happen in one transaction, under the board locks that every writer
takes (board before players), so nothing can change in between.
"""

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import router, transaction
from django.db.models import F, Model, Q
from django.utils import timezone

from live.models import Board, Change, PlayerChange
from live.scores import changes


@dataclass(frozen=True)
class LastChange:
    """Who made the latest recorded change of a field, when, and through what."""

    username: str | None
    source: str
    at: datetime

    @property
    def who(self) -> str:
        if self.username:
            return self.username
        return "a script" if self.source == Change.Source.SCRIPT else f"a script ({self.source})"


def last_change(*, instance: Model, field: str) -> LastChange | None:
    """The latest recorded change-set that changed `field` of a board or a player, if any."""
    if isinstance(instance, Board):
        record = (
            Change.objects.filter(board_id=instance.pk, board_fields__has_key=field)
            .select_related("user")
            .order_by("-version")
            .first()
        )
    else:
        entries = PlayerChange.objects.filter(player_id=instance.pk)
        if field == "board":  # the player joined its current board
            entries = entries.filter(change__board_id=instance.board_id, name_before__isnull=True)
        else:
            before, after = f"{field}_before", f"{field}_after"
            entries = entries.filter(
                Q(**{f"{before}__isnull": True}) | Q(**{f"{after}__isnull": True}) | ~Q(**{before: F(after)})
            )
        entry = entries.select_related("change__user").order_by("-change__at", "-change__version").first()
        record = entry and entry.change
    if record is None:
        return None
    return LastChange(username=record.user and record.user.get_username(), source=record.source, at=record.at)


def last_removal(*, player_id: int) -> tuple[str | None, LastChange | None]:
    """The name a player had when it last left a board (deleted or moved), and that change."""
    entry = (
        PlayerChange.objects.filter(player_id=player_id, name_after__isnull=True)
        .select_related("change__user")
        .order_by("-change__at", "-change__version")
        .first()
    )
    if entry is None:
        return None, None
    record = entry.change
    user = record.user and record.user.get_username()
    return entry.name_before, LastChange(username=user, source=record.source, at=record.at)


def _when(change: LastChange) -> str:
    return timezone.localtime(change.at).strftime("%Y-%m-%d %H:%M:%S %Z")


def removed_message(*, player_id: int) -> str:
    """The error for a row the user changed that left this page's board since it was loaded."""
    name, change = last_removal(player_id=player_id)
    what = f"“{name}”" if name else "This player"
    by = f" by {change.who} at {_when(change)}" if change else ""
    return f"{what} was deleted or moved{by}, after this page was loaded. Nothing was saved."


def conflict_message(*, instance: Model, field: str, label: str, shown: str, now: str) -> str:
    """The error for a field the user changed that someone else changed since the page was loaded."""
    change = last_change(instance=instance, field=field)
    if change is None:
        who_when = f"Someone changed {label} to {now}"
    else:
        who_when = f"{change.who} changed {label} to {now} at {_when(change)}"
    return (
        f"{who_when}, after this page was loaded (it showed {shown}). Nothing was saved. "
        f"The page now has your value: save again to replace {now} with it."
    )


MISSING_ORIGINAL = (
    "This page did not send the value it showed here (it may be older than the site's last update). "
    "Nothing was saved. Check the current values, then save again."
)


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str | Model):
        return f"“{value}”"
    return str(value)


def _differs(field: forms.Field, stored: Any, submitted: Any) -> bool:
    """Whether a submitted value (as posted) differs from a stored one, as the form compares them."""
    try:
        return field.has_changed(field.to_python(field.prepare_value(stored)), submitted)
    except ValidationError:
        return True


def _as_posted(field: forms.Field, value: Any) -> str:
    value = field.prepare_value(value)
    return "" if value is None else str(value)


class EditForm(forms.ModelForm):
    """A model form that saves only the fields its user changed, and never over others' changes.

    Validate it inside `transaction.atomic()` (the admin's change form is; `EditingAdmin`
    makes the changelist's save so) and save it with `update_fields`: `save()` does.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        opts = self._meta.model._meta
        concrete = {f.name for f in opts.concrete_fields}
        # The model's own fields only: a formset adds its "id" and "DELETE" after this.
        self.carried = [name for name in self.fields if name in concrete]
        for name in self.carried:
            self.fields[name].show_hidden_initial = True
        self._data_is_copy = False
        self.gone_pk: int | None = None  # set by EditFormSetMixin for a row deleted meanwhile

    @property
    def update_fields(self) -> list[str] | None:
        """What saving writes: everything for a new row, else only the fields the user changed."""
        if self.instance._state.adding:
            return None
        edited = [name for name in self.changed_data if name in self.carried]
        if not edited:
            return []
        opts = self.instance._meta
        return edited + [f.name for f in opts.concrete_fields if getattr(f, "auto_now", False)]

    def save(self, commit: bool = True) -> Model:
        instance = super().save(commit=False)
        if commit:
            instance.save(update_fields=self.update_fields)
            self.save_m2m()
        return instance

    def board_ids(self) -> set[int]:
        """The boards whose locks cover this row: its own, and any it is being moved to."""
        if isinstance(self.instance, Board):
            return {self.instance.pk}
        ids = {self.instance.board_id}
        target = getattr(self, "cleaned_data", {}).get("board")
        if target is not None:
            ids.add(target.pk)
        return ids - {None}

    def clean(self) -> dict:
        cleaned_data = super().clean()
        edited = [name for name in self.carried if name in self.changed_data]
        if self.gone_pk is not None:
            # Its row left the database (or this board) since the page was loaded.
            if edited and not cleaned_data.get("DELETE"):
                self.add_error(edited[0], removed_message(player_id=self.gone_pk))
            self.changed_data = []  # nothing to save, whether or not the user touched it
            return cleaned_data
        if self.instance._state.adding or cleaned_data.get("DELETE"):
            return cleaned_data  # a new row has nothing to overwrite; deleting writes no field
        missing = [name for name in self.carried if self[name].html_initial_name not in self.data]
        if not edited and not missing:
            for name in self.carried:  # untouched: keeps whatever it holds now
                self._keep_stored(name)
            return cleaned_data
        self._lock_boards()
        try:
            self.instance.refresh_from_db()
        except ObjectDoesNotExist:
            raise ValidationError(
                f"This {self.instance._meta.verbose_name} was deleted after this page was loaded. "
                "Nothing was saved."
            ) from None
        self._lock_boards()  # again, in case it was moved to another board meanwhile
        written = [name for name in edited if name not in missing and self._check(name)]
        for name in missing:
            self.add_error(name, MISSING_ORIGINAL)
            self._put(self[name].html_initial_name, self._stored(name))
        for name in set(self.carried) - set(edited) - set(missing):
            self._keep_stored(name)
        # What the admin saves and logs ("Changed Score."): only what is really written.
        self.changed_data = [n for n in self.changed_data if n not in self.carried or n in written]
        return cleaned_data

    def _check(self, name: str) -> bool:
        """Whether the user's change of `name` is to be written; adds the error of a conflict."""
        field, bound = self.fields[name], self[name]
        stored = self._stored_value(name)
        original = self.data.get(bound.html_initial_name)
        if not _differs(field, stored, original):
            return True  # nobody else changed it
        self._put(bound.html_initial_name, _as_posted(field, stored))
        if name not in self.cleaned_data:
            return False  # the user's value is invalid: its error is shown already
        if not _differs(field, stored, bound.data):
            self._keep_stored(name)  # someone else made the very same change
            return False
        label = str(field.label or name).lower()
        try:
            shown = _display(field.to_python(original))
        except ValidationError:
            shown = "a value that is gone"
        now = _display(getattr(self.instance, name))
        self.add_error(
            name, conflict_message(instance=self.instance, field=name, label=label, shown=shown, now=now)
        )
        return False

    def _lock_boards(self) -> None:
        using = router.db_for_write(self._meta.model, instance=self.instance)
        if not transaction.get_connection(using).in_atomic_block:
            raise RuntimeError("An EditForm must be validated and saved inside transaction.atomic().")
        for board_id in sorted(self.board_ids()):
            changes.lock_board(board_id=board_id, using=using)

    def _stored_value(self, name: str) -> Any:
        return self.instance._meta.get_field(name).value_from_object(self.instance)

    def _stored(self, name: str) -> str:
        return _as_posted(self.fields[name], self._stored_value(name))

    def _keep_stored(self, name: str) -> None:
        """Leave the field as stored: save it unchanged, show it and carry it as the original."""
        bound = self[name]
        self.cleaned_data[name] = getattr(self.instance, name)
        if _differs(self.fields[name], self._stored_value(name), bound.data):
            self._put(bound.html_name, self._stored(name))
        self._put(bound.html_initial_name, self._stored(name))

    def _put(self, key: str, value: str) -> None:
        """Change what the page shows if it is rendered again (the posted data is never written)."""
        if self.data.get(key) == value:
            return
        if not self._data_is_copy:
            self.data, self._data_is_copy = self.data.copy(), True
        self.data[key] = value


class EditFormSetMixin:
    """Locks the boards of the changed rows, in one order, before any row is checked.

    A row of the page that is gone by the time it is submitted (deleted, or moved off this
    board) is skipped if the user left it alone, and refused, saying so, if they changed it;
    Django alone would refuse the whole submit with an error on a hidden field nobody sees.
    """

    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if not (
            isinstance(form, EditForm)
            and form.is_bound
            and index is not None
            and index < self.initial_form_count()
            and form.instance._state.adding
        ):
            return
        pk_name = self.model._meta.pk.name
        try:
            form.gone_pk = int(form.data.get(form.add_prefix(pk_name), ""))
        except ValueError:
            return  # no id, or not one: Django's own error stands
        form.fields[pk_name] = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def full_clean(self) -> None:
        if self.is_bound:
            ids: set[int] = set()
            for form in self.initial_forms:
                if isinstance(form, EditForm) and not form.instance._state.adding and form.has_changed():
                    ids |= form.board_ids()
            using = router.db_for_write(self.model)
            for board_id in sorted(ids):
                changes.lock_board(board_id=board_id, using=using)
        super().full_clean()


class EditFormSet(EditFormSetMixin, forms.BaseModelFormSet):
    """The changelist's `list_editable` formset."""


class EditInlineFormSet(EditFormSetMixin, forms.BaseInlineFormSet):
    """An inline's formset (the board's players)."""


class EditingAdmin:
    """ModelAdmin mixin: `EditForm` on every page, and change-sets attributed to the user.

    The change form and delete page record their change-sets as made by the logged-in user
    through "form", the changelist through "list" (its `list_editable` save) or "action",
    and an inline's rows through "inline" (unless the form's own fields changed first: a
    change-set keeps the source of its first change). The changelist's POST runs in one
    transaction, so its rows are checked and written under the same locks.
    """

    form = EditForm

    # Signatures pass through: Django 6.1 added response_action(..., action_location).

    def changeform_view(self, request, *args, **kwargs):
        with changes.attributed(user=request.user, source=Change.Source.FORM):
            return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with changes.attributed(user=request.user, source=Change.Source.FORM):
            return super().delete_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        # Django validates the list_editable formset outside its own transaction.
        writing = (
            transaction.atomic(using=router.db_for_write(self.model))
            if request.method == "POST"
            else nullcontext()
        )
        with changes.attributed(user=request.user, source=Change.Source.LIST), writing:
            response = super().changelist_view(request, *args, **kwargs)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None and changelist.formset is not None and changelist.formset.is_bound:
            # Shown again with errors: each row beside its own form, whatever the order is now
            # (Django pairs the current rows with the posted forms by position).
            changelist.result_list = [form.instance for form in changelist.formset.forms]
        return response

    def response_action(self, request, *args, **kwargs):
        with changes.attributed(user=request.user, source=Change.Source.ACTION):
            return super().response_action(request, *args, **kwargs)

    def save_model(self, request, obj, form, change) -> None:
        if isinstance(form, EditForm):
            obj.save(update_fields=form.update_fields)
        else:
            super().save_model(request, obj, form, change)

    def save_formset(self, request, *args, **kwargs) -> None:
        with changes.attributed(user=request.user, source=Change.Source.INLINE):
            super().save_formset(request, *args, **kwargs)

    def get_changelist_form(self, request, **kwargs):
        kwargs.setdefault("form", self.form)
        return super().get_changelist_form(request, **kwargs)

    def get_changelist_formset(self, request, **kwargs):
        kwargs.setdefault("formset", EditFormSet)
        return super().get_changelist_formset(request, **kwargs)
