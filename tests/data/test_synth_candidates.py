"""The candidate templates (data/synth_slots/candidates/) stay adoptable: loaded together with the
library they parse, their ids and kinds are new, and they move no existing template's split."""
import shutil

import pytest

from data import synth
from data.synth_templates import SLOT_DIR, load_library

CANDIDATES = sorted((SLOT_DIR / "candidates").glob("*.yaml"))


@pytest.mark.skipif(not CANDIDATES, reason="no candidate templates")
def test_candidates_load_beside_the_library_and_keep_its_split(tmp_path):
    for path in [*SLOT_DIR.glob("*.yaml"), *CANDIDATES]:
        shutil.copy(path, tmp_path / path.name)
    library, with_candidates = load_library(), load_library(str(tmp_path))
    before = {t.id for t in library.templates}
    added = [t for t in with_candidates.templates if t.id not in before]
    assert len(with_candidates.templates) == len(library.templates) + len(added) and added
    old_kinds = {(t.region, t.kind) for t in library.templates if t.kind}
    assert not {(t.region, t.kind) for t in added if t.kind} & old_kinds  # new kinds only
    for seed in (0, 1, 7, 123):
        split = synth.assign_splits(list(library.templates), seed)
        split_with = synth.assign_splits(list(with_candidates.templates), seed)
        assert {tid: split_with[tid] for tid in split} == split, seed
