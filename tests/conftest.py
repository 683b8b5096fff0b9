import numpy as np
import pytest

from merino.cost import CostModel
from merino.entropy import EntropyConstants, EntropyLookupTable
from merino.space import SearchSpace


@pytest.fixture(scope="session")
def tiny_space():
    """4 widths x 4 FFN widths x 2 depths per block: brute force over it is cheap."""
    return SearchSpace(n_blocks=3, e_min=64, e_max=256, e_step=64, f_min=128, f_max=512, f_step=128, depths=(1, 2))


@pytest.fixture(scope="session")
def tiny_cost():
    return CostModel(vocab_size=512, embed_proj_dim=128, max_positions=256, seq_len=128)


@pytest.fixture(scope="session")
def tiny_table(tiny_space):
    """Two draws per shape, not more until converged (max_draws): a tenth of a second, not half a minute."""
    return EntropyLookupTable.build(tiny_space, EntropyConstants(draws=2, max_draws=2), progress=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
