import json
import re
from collections import Counter

import numpy as np
import pytest

from merino.paper import load_reference, paper_structures
from merino.space import Architecture, ArchitectureError, Block, SearchSpace


def test_paper_table7_grid():
    space = SearchSpace()
    assert list(space.e_grid[[0, -1]]) == [64, 1024] and len(space.e_grid) == 16
    assert list(space.f_grid[[0, -1]]) == [128, 4096] and len(space.f_grid) == 32
    assert space.gene_sizes == (16, 32, 4)


def test_table8_structures_are_members_of_the_ratio_space():
    """Table 8 writes F as R E with R in {1, 1.5}; MeRino-64M's F = 960, 1344 lie off Table 7's 128-step
    grid, so only the ratio axis (the default) holds all three."""
    space = SearchSpace.from_config(
        {
            "n_blocks": 4,
            "embed_dim": {"min": 64, "max": 1024, "step": 64},
            "depths": [1, 2, 3, 4],
            "non_decreasing_width": True,
        },
        64,
    )
    assert space.ffn_ratios == (1, 1.5, 2, 2.5, 3, 3.5, 4) and space.gene_sizes == (16, 7, 4)
    for name, arch in paper_structures(load_reference()).items():
        genes = space.encode(arch)
        assert space.to_architecture(genes, name=name) == arch
    absolute = SearchSpace()
    with pytest.raises(ArchitectureError, match="F=960"):
        absolute.check(paper_structures(load_reference())["MeRino-64M"])


def test_ffn_axis_is_ratio_or_absolute_never_both():
    cfg = {"n_blocks": 2, "embed_dim": {"min": 64, "max": 128, "step": 64}, "depths": [1], "non_decreasing_width": True}
    assert SearchSpace.from_config({**cfg, "ffn_dim": {"min": 128, "max": 256, "step": 128}}, 64).ffn_ratios == ()
    ratio = SearchSpace.from_config({**cfg, "ffn_ratio": [1, 2]}, 64)
    assert ratio.ffn_table.tolist() == [[64, 128], [128, 256]] and ratio.f_grid.tolist() == [64, 128, 256]
    with pytest.raises(ValueError, match="not both"):
        SearchSpace.from_config({**cfg, "ffn_ratio": [1], "ffn_dim": {"min": 128, "max": 256, "step": 128}}, 64)
    with pytest.raises(ValueError, match="whole FFN width"):
        SearchSpace.from_config({**cfg, "ffn_ratio": [1.3]}, 64)
    with pytest.raises(ArchitectureError, match="not R\\*E"):
        ratio.check(Architecture((Block(64, 96, 1), Block(128, 128, 1))))


def test_sampling_stays_in_space_and_is_uniform_over_width_multisets(tiny_space, rng):
    genes = tiny_space.sample(rng, 40000)
    assert tiny_space.valid_genes(genes).all()
    widths = Counter(map(tuple, genes[..., 0]))
    n_multisets = 20  # C(4 + 3 - 1, 3)
    assert len(widths) == n_multisets
    counts = np.array(list(widths.values()))
    assert counts.min() > 0.8 * 40000 / n_multisets and counts.max() < 1.2 * 40000 / n_multisets
    for g in genes[:50]:
        tiny_space.check(tiny_space.to_architecture(g))


def test_mutation_changes_one_gene_and_keeps_width_order(tiny_space, rng):
    parents = tiny_space.sample(rng, 2000)
    children = tiny_space.mutate(rng, parents)
    assert tiny_space.valid_genes(children).all()
    changed = (children != parents).any(axis=-1).sum(axis=-1)
    assert (changed >= 1).all()
    # without a width move, exactly one block changes
    same_widths = (children[..., 0] == parents[..., 0]).all(-1)
    assert (changed[same_widths] == 1).all()
    assert children.min() >= 0 and (children.max(axis=(0, 1)) < np.array(tiny_space.gene_sizes)).all()


def test_json_round_trip(tmp_path, tiny_space, rng):
    arch = tiny_space.to_architecture(tiny_space.sample(rng, 1)[0], name="x")
    arch.save(tmp_path / "a.json")
    assert Architecture.load(tmp_path / "a.json") == arch
    assert (tiny_space.encode(arch) == tiny_space.encode(Architecture.load(tmp_path / "a.json"))).all()


def test_table8_structures_load_with_ffn_ratio():
    s = paper_structures(load_reference())
    assert s["MeRino-64M"].ffn_dims == [960, 1344, 1024, 1024]
    assert s["MeRino-52M"].depths == [2, 3, 2, 1]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"E": [64, 128], "F": [128], "L": [1, 1]}, "one entry per block"),
        ({"E": [64, 100], "F": [128, 128], "L": [1, 1]}, "block 1: embed_dim 100"),
        ({"E": [64, 128], "F": [128, 128], "L": [1, 0]}, "block 1: depth"),
        ({"E": [64, 128], "R": [1.5, 1.3], "L": [1, 1]}, "block 1: R*E"),
        ({"E": [64], "L": [1]}, "one of F or R"),
        ({"E": [64], "F": ["wide"], "L": [1]}, "block 0: F must be an integer"),
    ],
)
def test_invalid_architecture_names_the_block(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchitectureError, match=re.escape(message)):
        Architecture.load(path).validate()


def test_search_space_membership_errors(tiny_space):
    ok = Architecture((Block(64, 128, 1), Block(128, 256, 2), Block(256, 512, 1)))
    tiny_space.check(ok)
    with pytest.raises(ArchitectureError, match="block 1: E=64 is narrower"):
        tiny_space.check(Architecture((Block(128, 128, 1), Block(64, 128, 1), Block(256, 128, 1))))
    with pytest.raises(ArchitectureError, match="block 2: F=640"):
        tiny_space.check(Architecture((Block(64, 128, 1), Block(64, 128, 1), Block(64, 640, 1))))
    with pytest.raises(ArchitectureError, match="block 0: L=3"):
        tiny_space.check(Architecture((Block(64, 128, 3), Block(64, 128, 1), Block(64, 128, 1))))


def test_space_size_counts_multisets(tiny_space):
    assert tiny_space.size() == 20 * (4 * 2) ** 3


def test_bad_space_settings_are_named():
    with pytest.raises(ValueError, match="embed_dim"):
        SearchSpace(e_min=64, e_max=1000, e_step=64)
    with pytest.raises(ValueError, match="multiples of head_dim"):
        SearchSpace(e_min=32, e_max=1024, e_step=32)
