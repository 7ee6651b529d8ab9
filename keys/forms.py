"""The admin's forms for keys, teams and users: pickers for the models and aliases the API stores as JSON, and the
API's rules for budgets and durations as field errors (a negative budget, "30x", a soft budget above the maximum)
instead of a silent swap or a 500.

The model groups to pick from are the gateway's (its deployments); keys may not import gateway, so the gateway
registers a reader here (``model_choices``) when its admin loads.
"""

import json
from collections.abc import Callable, Iterable

from django import forms
from django.core.exceptions import ValidationError

from keys.budgets import InvalidDuration, parse_duration
from pricing.money import usd

# Readers of the names a key, user or team may list: model groups, access groups. gateway.admin adds its own.
model_choices: list[Callable[[], Iterable[str]]] = []
# What a Team admin may give a key up to its team's own: the field and how the refusal names it.
TEAM_CAPS = {"max_budget": "budget", "rpm_limit": "rpm limit", "tpm_limit": "tpm limit"}


def _known_models() -> list[str]:
    return sorted({name for read in model_choices for name in read()})


def _entries(text: str) -> list[str]:
    return [entry.strip() for entry in text.replace("\n", ",").split(",") if entry.strip()]


class _Choices(forms.CheckboxSelectMultiple):
    def choices_values(self) -> list[str]:
        return [value for value, _ in self.choices]


class ModelsWidget(forms.MultiWidget):
    """Checkboxes for the configured model groups and access groups, and a text box for anything else (a wildcard
    such as openai/*, a group not configured yet)."""

    template_name = "keys/models_widget.html"

    def __init__(self, attrs=None):
        other = forms.TextInput(attrs={"placeholder": "others, comma-separated: openai/*", "size": 40})
        super().__init__([_Choices(), other], attrs)

    def decompress(self, value):
        known = set(self.widgets[0].choices_values())
        value = list(value or [])
        return [[name for name in value if name in known], ", ".join(name for name in value if name not in known)]


class ModelsField(forms.MultiValueField):
    """The JSON list of model names the API stores, picked: the known names in their order, then the others."""

    def __init__(self, **kwargs):
        for name in ("encoder", "decoder", "max_length"):
            kwargs.pop(name, None)
        fields = (forms.MultipleChoiceField(required=False), forms.CharField(required=False))
        super().__init__(fields, widget=ModelsWidget(), require_all_fields=False, required=False, **kwargs)

    def prepare_value(self, value):
        # The stored JSON list is a list too, which MultiWidget would take for its parts: split it first.
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            return self.widget.decompress(value)
        return value

    def refresh_choices(self) -> None:
        choices = [(name, name) for name in _known_models()]
        self.fields[0].choices = choices
        self.widget.widgets[0].choices = choices

    def compress(self, data_list):
        known, others = data_list or ([], "")
        return list(dict.fromkeys([*(known or []), *_entries(others or "")]))

    def has_changed(self, initial, data):
        return list(initial or []) != self.compress(
            [self.fields[0].clean(data[0] if data else []), self.fields[1].clean(data[1] if data else "")]
        )


class AliasesField(forms.CharField):
    """The JSON object {requested model: model group} the API stores, written one alias a line: ``alias = group``."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40, "placeholder": "my-gpt = gpt-4o"})

    def __init__(self, **kwargs):
        for name in ("encoder", "decoder", "max_length"):
            kwargs.pop(name, None)
        kwargs["required"] = False
        kwargs.setdefault("help_text", "One alias a line: requested model = model group.")
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{alias} = {group}" for alias, group in value.items())
        return value

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        if (value or "").strip().startswith("{"):
            return _json_aliases(value)
        aliases = {}
        for number, line in enumerate((value or "").splitlines(), start=1):
            if not line.strip():
                continue
            alias, sign, group = (part.strip() for part in line.partition("="))
            if not sign or not alias or not group:
                raise ValidationError(f"Line {number}: write alias = model group ({line.strip()!r}).")
            if alias in aliases:
                raise ValidationError(f"Line {number}: {alias!r} is aliased twice.")
            aliases[alias] = group
        return aliases

    def has_changed(self, initial, data):
        try:
            return (initial or {}) != self.to_python(data)
        except ValidationError:
            return True


def _json_aliases(text: str) -> dict:
    """Aliases pasted as the API takes them, a JSON object of names."""
    try:
        aliases = json.loads(text)
    except ValueError as error:
        raise ValidationError(f"Not a JSON object: {error}.") from None
    if not isinstance(aliases, dict) or not all(isinstance(group, str) for group in aliases.values()):
        raise ValidationError("Aliases are an object of requested model: model group (text).")
    return aliases


class BudgetRulesForm(forms.ModelForm):
    """A key's, team's or user's form: pickers for models and aliases, and budgets and durations checked as the API
    checks them."""

    money = ("max_budget", "soft_budget")
    # Set on a Team admins login's key form (keys.admin): the key's limits may not exceed its team's own.
    capped_by_team = False
    pickers = {"models": ModelsField, "aliases": AliasesField, "model_aliases": AliasesField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, ModelsField):
                field.refresh_choices()

    @classmethod
    def picker_for(cls, db_field, **kwargs):
        """The form field for a JSON column a picker shows (formfield_overrides cannot tell columns apart)."""
        picker = cls.pickers.get(db_field.name)
        if picker is None:
            return None
        return picker(label=db_field.verbose_name.capitalize(), help_text=db_field.help_text, initial=db_field.default)

    def clean(self):
        cleaned = super().clean()
        for name in self.money:
            value = cleaned.get(name)
            if value is not None and value < 0:
                self.add_error(name, "A budget cannot be negative.")
        soft, hard = cleaned.get("soft_budget"), cleaned.get("max_budget")
        if soft is not None and hard is not None and soft >= 0 and soft > hard:
            self.add_error("soft_budget", "The soft budget is an alert before the maximum: it cannot be above it.")
        duration = cleaned.get("budget_duration")
        if duration:
            try:
                parse_duration(duration)
            except InvalidDuration as error:
                self.add_error("budget_duration", str(error))
        if self.capped_by_team:
            self._within_team_limits(cleaned)
        return cleaned

    def _within_team_limits(self, cleaned) -> None:
        """A Team admin gives a key at most what its team has: a budget or rate limit above the team's (or none,
        where the team has one) is refused, naming the team's."""
        team = cleaned.get("team")
        if team is None:
            self.add_error("team", "Choose one of your teams: a key outside them is not yours to manage.")
            return
        for name, label in TEAM_CAPS.items():
            cap, value = getattr(team, name), cleaned.get(name)
            if cap is not None and (value is None or value > cap):
                shown = usd(cap) if name in self.money else cap
                self.add_error(name, f"At most the team's own {label} ({team}: {shown}); ask an admin for more.")
