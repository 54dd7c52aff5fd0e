"""Admin forms read from their HTML and submitted as a browser submits them."""

import re
from html.parser import HTMLParser


class _FormReader(HTMLParser):
    """Collects the (name, value) pairs a browser would submit from one form, buttons aside."""

    def __init__(self, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_value: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = attr.get("id") == self.form_id
        if not self.inside or "name" not in attr or "disabled" in attr:
            if tag == "option" and self._select is not None:
                self._option(attr)
            return
        kind = attr.get("type", "text").lower()
        if tag == "input" and kind not in {"submit", "button", "image", "reset", "file"}:
            if kind not in {"checkbox", "radio"} or "checked" in attr:
                self.fields.append((attr["name"], attr.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            self._select, self._select_value = attr["name"], None
        elif tag == "textarea":
            self._textarea = attr["name"]
            self.fields.append((attr["name"], ""))

    def _option(self, attr: dict[str, str]) -> None:
        if self._select_value is None or "selected" in attr:
            self._select_value = attr.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            name, value = self.fields[-1]
            self.fields[-1] = (name, value + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select is not None:
            self.fields.append((self._select, self._select_value or ""))
            self._select = None
        elif tag == "textarea":
            self._textarea = None


class AdminForm:
    """The fields of an admin form as rendered; change them, then `submit()` them with a button."""

    def __init__(self, html: str, form_id: str | None) -> None:
        """`form_id` None: the form without an id (a delete page's confirmation)."""
        reader = _FormReader(form_id)
        reader.feed(html)
        if not reader.fields:
            raise AssertionError(f"no form #{form_id} with fields on the page")
        self.fields = reader.fields

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def set(self, name: str, value: str | int | bool) -> "AdminForm":
        """Type a value into a field (a bool ticks or clears a checkbox)."""
        others = [(key, old) for key, old in self.fields if key != name]
        if value is False:
            self.fields = others
        elif value is True:
            self.fields = [*others, (name, "on")]
        else:
            if self.get(name) is None:
                raise AssertionError(f"no field {name!r} on the page")
            self.fields = [(key, str(value) if key == name else old) for key, old in self.fields]
        return self

    def tick(self, name: str, value: str | int) -> "AdminForm":
        """Tick one of several checkboxes that share a name (a changelist's row selection)."""
        self.fields.append((name, str(value)))
        return self

    def row(self, pk: int, prefix: str = "form") -> str:
        """The form prefix ("form-3") of the row of an object in a changelist or inline."""
        for key, value in self.fields:
            if (match := re.fullmatch(rf"({prefix}-\d+)-id", key)) and value == str(pk):
                return match[1]
        raise AssertionError(f"no row for pk {pk} on the page")

    def submit(self, button: str | None = "_save", value: str = "Save") -> list[tuple[str, str]]:
        """The fields as posted by clicking a button (None: a button without a name)."""
        return [*self.fields, (button, value)] if button else list(self.fields)
