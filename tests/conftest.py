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


# --------------------------------------------------------------------------- options (issue 9)
def pytest_addoption(parser):
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="run the fuzz suite with 25x more examples (nightly-style)")
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="run tests marked slow (tensors over 2^31 elements, minutes, ~20 GB)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes and many GB of RAM; needs --run-slow")
    import fuzz_support

    if config.getoption("--fuzz-long"):
        fuzz_support.SCALE = max(fuzz_support.SCALE, 25)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow (needs --run-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    import fuzz_support

    c = fuzz_support.CASES
    total = sum(c.values())
    if total:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
        terminalreporter.write_line(
            f"cnnkit fuzz: {total} cases ({parts}); examples scale x{fuzz_support.SCALE}"
        )
