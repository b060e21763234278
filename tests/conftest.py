import numpy as np
import pytest

import cnnkit

SUPPORTED_ISAS = cnnkit.cpu_info()["supported_isas"]


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Runs the test once per ISA path this CPU supports, restoring the default after."""
    before = cnnkit.get_isa()
    cnnkit.set_isa(request.param)
    yield request.param
    cnnkit.set_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
