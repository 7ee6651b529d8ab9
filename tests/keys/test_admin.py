"""The keys admin: every page opens, a generated secret is shown once, actions are logged, lists make no N+1."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from keys import services
from keys.auth import hash_key
from keys.models import InternalUser, KeyChange, Team, VirtualKey
from tests.keys.factories import make_key, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated():
    team = make_team(team_alias="research", max_budget=Decimal("10"))
    user = make_user(user_id="alice", max_budget=Decimal("5"))
    user.teams.add(team)
    _, key = make_key(team_id=team.team_id, user_id="alice", max_budget=Decimal("1"), soft_budget=Decimal("0.5"))
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("0.75"))
    return team, user, key


@pytest.mark.parametrize(
    "url",
    [
        "admin:keys_virtualkey_changelist",
        "admin:keys_virtualkey_add",
        "admin:keys_team_changelist",
        "admin:keys_team_add",
        "admin:keys_internaluser_changelist",
        "admin:keys_internaluser_add",
        "admin:keys_keychange_changelist",
    ],
)
def test_list_and_add_pages_open(admin_client, populated, url):
    assert admin_client.get(reverse(url)).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "expiry=expired",
        "expiry=active",
        "expiry=never",
        "budget=over",
        "budget=soft",
        "budget=none",
        "blocked__exact=1",
    ],
)
def test_key_filters_open(admin_client, populated, query):
    assert admin_client.get(reverse("admin:keys_virtualkey_changelist") + "?" + query).status_code == 200


def test_change_pages_show_spend_against_budget(admin_client, populated):
    team, user, key = populated
    for name, obj in (("virtualkey", key), ("team", team), ("internaluser", user)):
        response = admin_client.get(reverse(f"admin:keys_{name}_change", args=[obj.pk]))
        assert response.status_code == 200
    listing = admin_client.get(reverse("admin:keys_virtualkey_changelist")).content.decode()
    assert "$0.75 / $1.00 (75%)" in listing
    assert "past soft budget" in listing


def test_over_budget_filter_finds_only_keys_over_budget(admin_client, populated):
    _, _, key = populated
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("1"))
    make_key(key_alias="fine", max_budget=Decimal("1"))
    response = admin_client.get(reverse("admin:keys_virtualkey_changelist") + "?budget=over")
    assert response.status_code == 200
    listing = response.content.decode()
    assert key.key_hint in listing and "fine" not in listing


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ("expiry=expired", {"alias-gone"}),
        ("expiry=active", {"alias-later", "alias-spent", "alias-warned"}),
        ("expiry=never", {"alias-spent", "alias-warned"}),
        ("budget=over", {"alias-spent"}),
        ("budget=soft", {"alias-warned"}),
        ("budget=none", {"alias-gone"}),
    ],
)
def test_each_key_filter_lists_only_its_keys(admin_client, query, listed):
    now = timezone.now()
    rows = {
        "alias-gone": {"expires": now - timedelta(days=1)},
        "alias-later": {"expires": now + timedelta(days=1), "max_budget": Decimal("10"), "soft_budget": Decimal("5")},
        "alias-spent": {"max_budget": Decimal("1"), "spend": Decimal("1")},
        "alias-warned": {"max_budget": Decimal("10"), "soft_budget": Decimal("1"), "spend": Decimal("2")},
    }
    for alias, fields in rows.items():
        _, key = make_key(key_alias=alias)
        VirtualKey.objects.filter(pk=key.pk).update(**fields)

    page = admin_client.get(reverse("admin:keys_virtualkey_changelist") + "?" + query).content.decode()

    assert {alias for alias in rows if alias in page} == listed


def test_key_list_queries_do_not_grow_with_rows(admin_client, populated, django_assert_max_num_queries):
    url = reverse("admin:keys_virtualkey_changelist")
    admin_client.get(url)
    with django_assert_max_num_queries(12) as few:
        assert admin_client.get(url).status_code == 200
    for _ in range(10):
        make_key(team_id=populated[0].team_id, user_id="alice")
    with django_assert_max_num_queries(len(few)):
        assert admin_client.get(url).status_code == 200


def test_generate_key_shows_the_secret_once_and_stores_its_hash(admin_client, populated):
    team, _, _ = populated
    response = admin_client.post(
        reverse("admin:keys_virtualkey_add"),
        {
            "key_alias": "from-admin",
            "team": team.team_id,
            "models": "[]",
            "aliases": "{}",
            "config": "{}",
            "metadata": "{}",
            "max_budget": "2.5",
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    secret = re.search(r'class="tollgate-secret">(sk-[\w-]+)<', response.content.decode()).group(1)
    key = VirtualKey.objects.get(key_alias="from-admin")
    assert key.token_hash == hash_key(secret)
    assert (key.max_budget, key.team, key.created_by) == (Decimal("2.5"), team, "admin:admin")
    change_page = admin_client.get(reverse("admin:keys_virtualkey_change", args=[key.pk])).content.decode()
    assert secret not in change_page
    assert LogEntry.objects.filter(object_id=str(key.pk)).exists()
    assert KeyChange.objects.filter(entity_id=key.token_hash, action="created", actor="admin:admin").exists()


@pytest.mark.parametrize(("action", "blocked"), [("block", True), ("unblock", False)])
def test_block_actions_are_recorded(admin_client, populated, action, blocked):
    _, _, key = populated
    VirtualKey.objects.filter(pk=key.pk).update(blocked=not blocked)
    response = admin_client.post(
        reverse("admin:keys_virtualkey_changelist"), {"action": action, "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    assert f"{action.capitalize()}ed 1 key(s)." in response.content.decode()
    key.refresh_from_db()
    assert key.blocked is blocked
    assert KeyChange.objects.filter(entity_id=key.token_hash, action=f"{action}ed", actor="admin:admin").exists()
    assert LogEntry.objects.filter(object_id=str(key.pk)).exists()


def test_regenerate_action_shows_the_new_secret(admin_client, populated):
    _, _, key = populated
    old_hash = key.token_hash
    response = admin_client.post(
        reverse("admin:keys_virtualkey_changelist"), {"action": "regenerate", "_selected_action": [key.pk]}
    )
    assert response.status_code == 200
    secret = re.search(r'class="tollgate-secret">(sk-[\w-]+)<', response.content.decode()).group(1)
    key.refresh_from_db()
    assert key.secret_hash == hash_key(secret) != old_hash == key.token_hash  # a new secret, the same key
    assert KeyChange.objects.filter(entity_id=old_hash, action="regenerated", deleted=False).exists()
    change_page = admin_client.get(reverse("admin:keys_virtualkey_change", args=[key.pk])).content.decode()
    assert old_hash in change_page and key.secret_hash not in change_page
    found = admin_client.get(reverse("admin:keys_virtualkey_changelist"), {"q": key.secret_hash}).content.decode()
    assert services.key_hint(secret) not in found


def test_deleting_a_team_in_the_admin_deletes_its_keys_through_the_change_log(admin_client, populated):
    team, _, key = populated
    response = admin_client.post(reverse("admin:keys_team_delete", args=[team.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Team.objects.exists()
    assert not VirtualKey.objects.exists()
    assert KeyChange.objects.filter(entity_id=key.token_hash, deleted=True).exists()
    assert InternalUser.objects.filter(user_id="alice").exists()


def test_editing_a_team_budget_is_recorded_with_who_and_what(admin_client, populated):
    team, _, _ = populated
    response = admin_client.post(
        reverse("admin:keys_team_change", args=[team.pk]),
        {
            "team_id": team.team_id,
            "team_alias": "research",
            "model_aliases": "{}",
            "models": "[]",
            "metadata": "{}",
            "max_budget": "20",
            "budget_duration": "1mo",
            "InternalUser_teams-TOTAL_FORMS": "0",
            "InternalUser_teams-INITIAL_FORMS": "0",
            "administrators-TOTAL_FORMS": "0",  # the team's administrators inline (Admins see it)
            "administrators-INITIAL_FORMS": "0",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    team.refresh_from_db()
    assert team.max_budget == Decimal("20")
    assert team.budget_reset_at is not None
    change = KeyChange.objects.get(entity_id=team.team_id, actor="admin:admin")
    assert set(change.changes) >= {"max_budget", "budget_duration"}
    history = admin_client.get(reverse("admin:keys_keychange_changelist") + f"?q={team.team_id}").content.decode()
    assert "admin:admin" in history


KEY_FORM = {"models": "[]", "aliases": "{}", "config": "{}", "metadata": "{}"}
# What a browser posts back for fields with a callable default, which Django compares to tell what changed.
KEY_FORM_INITIAL = {f"initial-{name}": value for name, value in KEY_FORM.items()}


def test_a_key_made_in_the_admin_is_made_by_the_service_as_the_api_makes_it(admin_client, populated, settings):
    # The service records the change in the API's names (team_id, money as its digits); a blank expiry is the
    # form's "never", whatever default a key made without one gets.
    settings.KEY_DEFAULT_DURATION = "30d"
    team, _, _ = populated
    response = admin_client.post(
        reverse("admin:keys_virtualkey_add"),
        {**KEY_FORM, "key_alias": "made", "team": team.team_id, "max_budget": "2.5"},
    )
    assert response.status_code == 200
    key = VirtualKey.objects.get(key_alias="made")
    change = KeyChange.objects.get(entity_id=key.token_hash, action="created")
    assert (change.changes["team_id"], change.changes["max_budget"], change.changes["expires"]) == (
        team.team_id,
        "2.5",
        None,
    )
    assert key.expires is None


def test_editing_a_key_in_the_admin_records_only_what_changed(admin_client, populated):
    _, _, key = populated
    form = {
        **KEY_FORM,
        **KEY_FORM_INITIAL,
        "key_alias": key.key_alias,
        "team": key.team_id,
        "user": key.user_id,
        "max_budget": "1",
    }
    response = admin_client.post(
        reverse("admin:keys_virtualkey_change", args=[key.pk]), {**form, "soft_budget": "0.5", "budget_duration": "1d"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    key.refresh_from_db()
    change = KeyChange.objects.filter(entity_id=key.token_hash).latest("id")
    assert (change.action, change.actor, change.changes) == ("updated", "admin:admin", {"budget_duration": "1d"})
    assert key.budget_reset_at is not None and key.spend == Decimal("0.75")


def test_a_user_made_in_the_admin_joins_its_teams_through_the_service(admin_client, populated):
    team, _, _ = populated
    response = admin_client.post(
        reverse("admin:keys_internaluser_add"),
        {
            "user_id": "bob",
            "models": "[]",
            "metadata": "{}",
            "teams": [team.pk],
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(InternalUser.objects.get(user_id="bob").teams.all()) == [team]
    change = KeyChange.objects.get(entity_id="bob", action="created")
    assert change.changes["teams"] == [team.team_id]


def test_a_team_id_keys_name_cannot_be_changed_in_the_admin(admin_client, populated):
    team, _, key = populated
    page = admin_client.get(reverse("admin:keys_team_change", args=[team.pk])).content.decode()
    assert 'name="team_id"' not in page
    assert 'name="team_id"' in admin_client.get(reverse("admin:keys_team_add")).content.decode()
    key.refresh_from_db()
    assert key.team == team


def _key_form(key, **changes) -> dict:
    """The key's change form as a browser posts it back, with ``changes``."""
    form = {"key_alias": key.key_alias, "team": key.team_id or "", "user": key.user_id or "", "config": "{}",
            "metadata": "{}", "max_budget": "1", "soft_budget": "0.5", "models_1": "", "aliases": ""}  # fmt: skip
    return {**form, "initial-config": "{}", "initial-metadata": "{}", **changes}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"max_budget": "-1"}, "max_budget", "A budget cannot be negative."),
        ({"soft_budget": "-0.5"}, "soft_budget", "A budget cannot be negative."),
        ({"soft_budget": "2"}, "soft_budget", "cannot be above it"),
        ({"budget_duration": "30x"}, "budget_duration", "'30x' is not a duration"),
        ({"rpm_limit": "-5"}, "rpm_limit", "greater than or equal to 0"),
        ({"aliases": "my-gpt gpt-4o"}, "aliases", "Line 1: write alias = model group"),
        ({"aliases": '{"a": 1}'}, "aliases", "model group (text)"),
    ],
)
def test_bad_input_in_the_key_form_is_a_field_error(admin_client, populated, changes, field, message):
    _, _, key = populated
    before = KeyChange.objects.count()

    response = admin_client.post(reverse("admin:keys_virtualkey_change", args=[key.pk]), _key_form(key, **changes))

    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors.get(field, []))
    assert KeyChange.objects.count() == before


@pytest.mark.parametrize("url", ["admin:keys_team_change", "admin:keys_internaluser_change"])
def test_a_negative_team_or_user_budget_is_a_field_error(admin_client, populated, url):
    team, user, _ = populated
    holder = team if "team" in url else user
    form = {"models_1": "", "metadata": "{}", "model_aliases": "", "max_budget": "-3", "budget_duration": "1mo",
            "InternalUser_teams-TOTAL_FORMS": "0", "InternalUser_teams-INITIAL_FORMS": "0",
            "administrators-TOTAL_FORMS": "0", "administrators-INITIAL_FORMS": "0",
            "keys-TOTAL_FORMS": "0", "keys-INITIAL_FORMS": "0"}  # fmt: skip

    response = admin_client.post(reverse(url, args=[holder.pk]), form)

    assert response.status_code == 200
    assert "A budget cannot be negative." in str(response.context["adminform"].form.errors["max_budget"])


def test_models_and_aliases_are_picked_and_stored_as_the_api_stores_them(admin_client, populated):
    from gateway.models import Deployment

    Deployment.objects.create(model_name="gpt-4o", litellm_model="openai/gpt-4o")
    Deployment.objects.create(
        model_name="claude", litellm_model="anthropic/claude-3-5-sonnet", model_info={"access_groups": ["beta"]}
    )
    _, _, key = populated
    page = admin_client.get(reverse("admin:keys_virtualkey_change", args=[key.pk])).content.decode()
    for offered in ("gpt-4o", "claude", "beta"):
        assert f'name="models_0" value="{offered}"' in page

    response = admin_client.post(
        reverse("admin:keys_virtualkey_change", args=[key.pk]),
        _key_form(
            key, models_0=["gpt-4o", "beta"], models_1="openai/*, gpt-4o", aliases="fast = gpt-4o\n\nsmart=claude"
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    key.refresh_from_db()
    assert key.models == ["gpt-4o", "beta", "openai/*"]
    assert key.aliases == {"fast": "gpt-4o", "smart": "claude"}
    page = admin_client.get(reverse("admin:keys_virtualkey_change", args=[key.pk])).content.decode()
    checked = re.findall(r'<input type="checkbox" name="models_0" value="([^"]+)" id="[^"]+" checked>', page)
    assert checked == ["beta", "gpt-4o"]
    assert 'name="models_1" value="openai/*"' in page
    assert "fast = gpt-4o\nsmart = claude</textarea>" in page


def test_an_unchanged_form_changes_nothing(admin_client, populated):
    _, _, key = populated
    services.update_key(key, {"models": ["openai/*", "gpt-4o"], "aliases": {"a": "b"}}, actor="test")
    before = KeyChange.objects.latest("id").id

    response = admin_client.post(
        reverse("admin:keys_virtualkey_change", args=[key.pk]),
        _key_form(key, models_1="openai/*, gpt-4o", aliases="a = b", max_budget="1", soft_budget="0.5"),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(KeyChange.objects.filter(id__gt=before).values_list("changes", flat=True)) == []


def test_key_and_team_pages_show_spend_over_time_and_recent_calls(admin_client, populated):
    from spend.ledger import write_batch
    from tests.spend.conftest import make_entry

    team, _, key = populated
    now = timezone.now()
    write_batch([make_entry(key_hash=key.token_hash, team_id=team.team_id, start_time=now, cost=Decimal("0.25"),
                            model_group=group) for group in ("gpt-4o", "gpt-4o", "claude")])  # fmt: skip

    for url, obj in (("admin:keys_virtualkey_change", key), ("admin:keys_team_change", team)):
        page = admin_client.get(reverse(url, args=[obj.pk])).content.decode()
        assert 'Spend in the last 30 days: <strong><span class="money" title="0.75">$0.75</span></strong>' in page
        assert len(re.findall(r'<rect class="bar"', page)) == 2  # today's bar: gpt-4o and claude stacked
        assert len(re.findall(r'href="/admin/spend/spendlog/\d+/change/"', page)) == 3  # the recent calls
        assert "Last minute, as logged: <strong>3</strong> calls,\n <strong>45</strong> tokens" in page
    assert (
        f"/admin/spend/spendlog/?key_hash={key.token_hash}"
        in admin_client.get(reverse("admin:keys_virtualkey_change", args=[key.pk])).content.decode()
    )


def test_a_team_page_names_its_members(admin_client, populated):
    team, user, _ = populated
    user.user_email = "alice@example.com"
    user.save()

    page = admin_client.get(reverse("admin:keys_team_change", args=[team.pk])).content.decode()

    assert "InternalUser_teams object" not in page
    assert "alice@example.com" in page
    assert re.search(r'<th class="column-internaluser[^"]*">User', page)  # not "Internaluser"
