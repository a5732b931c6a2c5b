"""apply, list and describe against the real registry. These tests use their own project
(`scratch`), so the definitions the other tests read never change."""

from __future__ import annotations

import datetime as dt

import pytest

import quiver

SCRATCH = """
project: scratch
entities:
  - name: shop
    join_keys: [{name: shop_id, type: string}]
sources:
  - name: sales
    entity: shop
    timestamp_field: ts
    schema:
      - {name: shop_id, type: string}
      - {name: ts, type: timestamp}
      - {name: total, type: float64}
feature_views:
  - name: shop_sales
    entity: shop
    source: sales
    features:
      - {name: total_sum, column: total, aggregation: sum, window: WINDOW}
"""


def scratch(window: str = "1h") -> str:
    return SCRATCH.replace("WINDOW", window)


def test_apply_dry_run_apply_and_change(client):
    dry = client.apply(scratch("1h"), dry_run=True)
    assert isinstance(dry, quiver.Plan)
    assert dry.project == "scratch" and not dry.applied and dry.revision == dry.base_revision
    assert [(i.kind, i.name, i.action, i.to_version) for i in dry.items] == [
        ("entity", "shop", "create", 1),
        ("source", "sales", "create", 1),
        ("view", "shop_sales", "create", 1),
    ]
    with pytest.raises(quiver.NotFound):  # a dry run changes nothing
        client.describe("view", "shop_sales", project="scratch")

    applied = client.apply(scratch("1h"))
    assert applied.applied and applied.revision == applied.base_revision + 1
    again = client.apply(scratch("1h"))
    assert not again.applied and not again.changed
    assert {i.action for i in again.items} == {"unchanged"}

    changed = client.apply(scratch("2h"))
    item = next(i for i in changed.items if i.name == "shop_sales")
    assert (item.action, item.from_version, item.to_version) == ("change", 1, 2)
    assert item.changes == ["features[total_sum].window: 1h -> 2h"]
    assert "~ view     shop_sales                   v1 -> v2" in str(changed)

    view = client.describe("view", "shop_sales", project="scratch")
    assert (view["version"], view["versions"]) == (2, [1, 2])
    assert view["spec"]["features"][0]["window"] == dt.timedelta(hours=2)
    old = client.describe("views", "shop_sales", version=1, project="scratch")
    assert old["spec"]["features"][0]["window"] == dt.timedelta(hours=1)


def test_apply_reads_files_and_directories(client, tmp_path):
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "defs.yaml").write_text(scratch("3h"))
    (tmp_path / "notes.txt").write_text("not a definition")
    plan = client.apply(tmp_path, dry_run=True)
    assert any(i.action == "change" and i.name == "shop_sales" for i in plan.items)
    assert client.apply(str(tmp_path / "nested" / "defs.yaml"), dry_run=True) == plan
    with pytest.raises(FileNotFoundError):
        client.apply(tmp_path / "missing.yaml")
    # An empty string is not the current directory; one line of YAML is YAML, not a path.
    with pytest.raises(quiver.InvalidArgument, match="no definitions given"):
        client.apply("", dry_run=True)
    for text in ("project: scratch", "{project: scratch}"):
        emptied = client.apply(text, dry_run=True)  # the project with nothing in it
        assert not emptied.applied and emptied.items
        assert all(i.action == "delete" for i in emptied.items), emptied
    (tmp_path / "empty").mkdir()
    with pytest.raises(quiver.InvalidArgument, match="no .yaml or .yml files"):
        client.apply(tmp_path / "empty")


def test_bad_definitions_name_every_error_and_apply_nothing(client):
    bad = scratch("0s").replace("aggregation: sum", "aggregation: median")
    with pytest.raises(quiver.InvalidArgument) as caught:
        client.apply(bad)
    message = str(caught.value)
    assert 'unknown aggregation "median"' in message
    assert "<yaml>: feature_views[0].features[0]" in message


def test_a_concurrent_change_is_a_conflict(dev, client, monkeypatch):
    client.apply(scratch("4h"))
    other = dev.client()
    real = client._registry

    def racing(method, response_type, request):
        if method == "Apply" and not request.dry_run:
            other.apply(scratch("5h"))  # lands between our plan and our apply
        return real(method, response_type, request)

    monkeypatch.setattr(client, "_registry", racing)
    with pytest.raises(quiver.Conflict) as caught:
        client.apply(scratch("6h"))
    assert caught.value.code == "ABORTED"
    monkeypatch.undo()
    view = client.describe("view", "shop_sales", project="scratch")
    assert view["spec"]["features"][0]["window"] == dt.timedelta(hours=5)
    other.close()


def test_list_and_describe(client):
    views = client.list("views")
    assert [v["name"] for v in views] == ["device_stats", "kinds", "scored"]
    assert all(v["kind"] == "view" and v["project"] == "pytest" for v in views)
    kinds = next(v for v in views if v["name"] == "kinds")
    features = {f["name"]: f for f in kinds["spec"]["features"]}
    assert features["last_vec"]["value_type"] == "float32_list"
    assert features["count_1h"]["aggregation"] == "count"
    assert features["count_1h"]["kind"] == "sliding"
    assert features["count_1h"]["window"] == dt.timedelta(hours=1)
    assert features["count"]["window"] is None
    assert kinds["spec"]["ttl"] == dt.timedelta(days=1)
    assert isinstance(kinds["created_at"], dt.datetime)

    source = client.describe("source", "events")
    assert source["versions"] == [1]
    assert [(c["name"], c["type"]) for c in source["spec"]["schema"]][:3] == [
        ("user_id", "int64"),
        ("ts", "timestamp"),
        ("amount", "float64"),
    ]
    assert source["spec"]["allowed_lateness"] == dt.timedelta(hours=1)
    scored = client.describe("feature_view", "scored")
    assert scored["spec"]["transforms"][0]["op"] == "zscore"
    assert scored["spec"]["transforms"][0]["exclude_above"] == 3.0
    assert {d["name"] for d in scored["dependencies"]} == {"user", "scores"}
    service = client.describe("service", "model_v1")
    assert service["spec"]["features"] == ["kinds:last_amount", "kinds:count", "kinds:last_label"]
    assert [e["name"] for e in client.list("entities")] == ["device", "user"]

    with pytest.raises(quiver.NotFound) as caught:
        client.describe("view", "no_such_view")
    assert "no_such_view" in str(caught.value) and isinstance(caught.value, LookupError)
    with pytest.raises(quiver.InvalidArgument, match="unknown kind 'gadgets'"):
        client.list("gadgets")
