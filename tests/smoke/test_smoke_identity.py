"""Model identity (smoke.identity): the whole repo id and the revision, never less."""

from __future__ import annotations

import pytest

from smoke.identity import Expected, Served, repo_matches

SHA = "0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab"
OTHER = "1" * 40
STAGED = f"/mnt/datasets/model-weights/flan-t5-small/{SHA}"


@pytest.mark.parametrize(
    ("repo", "served", "matches"),
    [
        ("google/flan-t5-small", "google/flan-t5-small", True),
        ("google/flan-t5-small", "attacker/flan-t5-small", False),  # the organisation is not dropped
        ("google/flan-t5-small", STAGED, False),  # the staged path has no organisation to prove it
        ("google/flan-t5-small", f"/mnt/datasets/model-weights/google/flan-t5-small/{SHA}", True),
        ("google/flan-t5-small", f"/mnt/datasets/model-weights/attacker/flan-t5-small/{SHA}", False),
        ("flan-t5-small", STAGED, True),
        ("flan-t5-small", "/mnt/datasets/model-weights/flan-t5-small/main", True),
        ("flan-t5-small", "/mnt/datasets/model-weights/flan-t5-small/v2-experimental", False),
        ("t5-small", STAGED, False),
        ("model-weights", "/mnt/datasets/model-weights/flan-t5-small", False),
        ("flan-t5-small", "", False),
    ],
)
def test_a_repo_matches_only_with_every_component(repo: str, served: str, matches: bool) -> None:
    assert repo_matches(repo, served) is matches


def test_with_the_weights_path_known_only_that_exact_path_passes() -> None:
    expected = Expected("google/flan-t5-small", SHA, STAGED)

    assert expected.problem(Served(STAGED)) is None
    assert expected.problem(Served(STAGED + "/")) is None
    other_revision = expected.problem(Served(STAGED.replace(SHA, OTHER)))
    assert other_revision == (f"model_id '{STAGED.replace(SHA, OTHER)}' is not the weights path '{STAGED}' "
                              "(google/flan-t5-small@0fc9ddf)")
    assert expected.problem(Served("attacker/flan-t5-small")) is not None
    assert expected.problem(Served("google/flan-t5-small", sha=SHA)) is not None  # not what it was given


def test_a_hub_served_model_must_report_the_pinned_revision() -> None:
    expected = Expected("google/flan-t5-small", SHA)

    assert expected.problem(Served("google/flan-t5-small", sha=SHA)) is None
    assert expected.problem(Served("google/flan-t5-small", sha=OTHER)) == (
        f"serves 'google/flan-t5-small' at revision {OTHER}, not {SHA}")
    assert "reports no model_sha" in (expected.problem(Served("google/flan-t5-small")) or "")
    assert expected.problem(Served("attacker/flan-t5-small", sha=SHA)) == (
        f"model_id 'attacker/flan-t5-small' is not revision {SHA} of 'google/flan-t5-small'")


def test_a_path_must_end_with_the_whole_id_and_the_revision() -> None:
    expected = Expected("google/flan-t5-small", SHA)

    assert expected.problem(Served(f"/models/google/flan-t5-small/{SHA}")) is None
    assert "whole repo id" in (expected.problem(Served(f"/models/attacker/flan-t5-small/{SHA}")) or "")
    assert "whole repo id" in (expected.problem(Served(STAGED)) or "")
    assert "is not revision" in (expected.problem(Served(f"/models/google/flan-t5-small/{OTHER}")) or "")


def test_without_a_revision_any_revision_of_the_whole_id_passes() -> None:
    expected = Expected("google/flan-t5-small")

    assert expected.problem(Served("google/flan-t5-small", sha=OTHER)) is None
    assert expected.problem(Served(f"/m/google/flan-t5-small/{OTHER}")) is None
    assert expected.problem(Served("attacker/flan-t5-small")) == (
        "model_id 'attacker/flan-t5-small' is not 'google/flan-t5-small' (the whole repo id must match)")


def test_a_weights_path_without_the_revision_is_refused() -> None:
    with pytest.raises(ValueError, match="does not contain the revision"):
        Expected("google/flan-t5-small", OTHER, STAGED)


def test_two_variants_are_told_apart_unless_model_revision_and_weights_are_one() -> None:
    small = Expected("google/flan-t5-small", SHA, STAGED)
    assert small.indistinguishable_from(Expected("google/flan-t5-small", SHA, STAGED))
    assert not small.indistinguishable_from(Expected("google/flan-t5-small", SHA, "/other/prefix/" + SHA))
    assert not small.indistinguishable_from(Expected("google/flan-t5-base", SHA, STAGED.replace("small", "base")))


def test_served_reads_info_and_labels_by_id_and_sha() -> None:
    assert Served.from_info({"model_id": STAGED, "model_sha": None}) == Served(STAGED)
    assert Served.from_info({"model_id": "google/flan-t5-small", "model_sha": SHA}).label() == (
        f"google/flan-t5-small@{SHA}")
