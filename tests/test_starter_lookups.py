"""A start looks its notebook up at Losant once per NOTEBOOK_LOOKUP_TTL, not once per start."""

import pytest

from service import defaults
from service.losant import NotFound


@pytest.fixture
def components(make_components):
    return make_components(
        NBRELAY_PUBLIC_URL="http://127.0.0.1:9", NBRELAY_SECRET="starter-test-secret-0123456789"
    )


def requests_of(sandbox_app, notebook_id: str) -> dict[str, int]:
    return sandbox_app.stats(notebook_id)["requests"]


def test_starting_one_notebook_again_costs_losant_only_the_execute(components, sandbox_app):
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
    for reference in (notebook["id"], notebook["id"], notebook["id"]):
        components.starter.start(reference, requested_by="test")
    counted = requests_of(sandbox_app, notebook["id"])
    assert (counted.get("get"), counted.get("execute")) == (1, 3)


def test_a_lookup_is_redone_once_it_is_old(components, sandbox_app, monkeypatch):
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
    monkeypatch.setattr(defaults, "NOTEBOOK_LOOKUP_TTL", 0.0)
    for _ in range(2):
        components.starter.start(notebook["id"], requested_by="test")
    assert requests_of(sandbox_app, notebook["id"]).get("get") == 2


def test_a_deleted_notebook_is_not_started_from_memory(components, sandbox_app):
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
    components.starter.start(notebook["id"], requested_by="test")
    components.losant().delete_notebook(sandbox_app.id, notebook["id"])
    for _ in range(2):  # the first execute's 404 forgets it; the second looks it up: gone
        with pytest.raises(NotFound):
            components.starter.start(notebook["id"], requested_by="test")


def test_a_notebook_recreated_under_its_name_is_found_again(components, sandbox_app):
    first = sandbox_app.create_notebook("Nightly report")
    sandbox_app.set_behaviour(first["id"], status="completed", durationSeconds=0)
    assert (
        components.starter.start("Nightly report", requested_by="test").notebook_id == (first["id"])
    )
    components.losant().delete_notebook(sandbox_app.id, first["id"])
    second = sandbox_app.create_notebook("Nightly report")
    started = components.starter.start("Nightly report", requested_by="test")
    assert started.notebook_id == second["id"]  # the 404 of the remembered one: looked up again
    assert requests_of(sandbox_app, second["id"]).get("execute") == 1
