"""advlab.validation: every helper's message names the argument, the expectation and the value."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from advlab.errors import ConfigError, KNNError
from advlab.validation import check_fraction, check_in, check_int, check_number, check_positive


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int("k", 0, minimum=1), "k: expected an int >= 1, found 0"),
        (lambda: check_int("k", 2.0, minimum=1), "k: expected an int >= 1, found 2.0"),
        (lambda: check_int("k", True, minimum=0), "k: expected an int >= 0, found True"),
        (lambda: check_int("k", "3"), "k: expected an int, found '3'"),
        (lambda: check_int("k", 9, minimum=1, maximum=8), "k: expected an int in [1, 8], found 9"),
        (lambda: check_int("k", -1, maximum=-2), "k: expected an int <= -2, found -1"),
        (lambda: check_number("eps", -0.5, minimum=0), "eps: expected a finite number >= 0, "
                                                       "found -0.5"),
        (lambda: check_number("eps", math.inf, minimum=0), "eps: expected a finite number >= 0, "
                                                           "found inf"),
        (lambda: check_number("eps", math.nan), "eps: expected a finite number, found nan"),
        (lambda: check_number("eps", False), "eps: expected a finite number, found False"),
        (lambda: check_number("x", 3, minimum=0, maximum=2), "x: expected a number in [0, 2], "
                                                             "found 3"),
        (lambda: check_positive("alpha", 0.0), "alpha: expected a finite number > 0, found 0.0"),
        (lambda: check_positive("alpha", "1"), "alpha: expected a finite number > 0, found '1'"),
        (lambda: check_fraction("share", 1.5), "share: expected a number in [0, 1], found 1.5"),
        (lambda: check_fraction("share", None), "share: expected a number in [0, 1], found None"),
        (lambda: check_in("metric", "cosine", ("l1", "l2")), "metric: expected one of l1, l2, "
                                                             "found 'cosine'"),
        (lambda: check_in("kind", ["pgd"], {"pgd": 1}), "kind: expected one of pgd, "
                                                        "found ['pgd']"),
    ],
)  # fmt: skip
def test_each_helper_names_argument_expectation_and_value(
    call: Callable[[], Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        call()


def test_good_values_come_back_converted() -> None:
    assert check_int("k", np.int64(3), minimum=1) == 3 and type(check_int("k", np.int64(3))) is int
    assert check_number("eps", 2, minimum=0) == 2.0 and type(check_number("eps", 2)) is float
    assert check_number("eps", np.float32(0.5), minimum=0, maximum=1) == 0.5
    assert check_positive("alpha", 1.25) == 1.25
    assert check_fraction("share", 0) == 0.0 and check_fraction("share", 1) == 1.0
    assert check_in("metric", "l2", ("l1", "l2")) == "l2"


def test_a_subclass_of_config_error_can_be_raised() -> None:
    with pytest.raises(KNNError, match=r"^k: expected an int >= 1, found 0$"):
        check_int("k", 0, minimum=1, error=KNNError)
    with pytest.raises(KNNError, match="metric: expected one of l1, l2"):
        check_in("metric", "l3", ("l1", "l2"), error=KNNError)


def test_library_checks_use_the_shared_messages() -> None:
    from advlab.defenses import DefenseObjective, FGSMRandomStart
    from advlab.models import create_model
    from advlab.train.augment import crop_flip_params

    with pytest.raises(ConfigError, match=r"^cifar_cnn width: expected an int >= 1, found 0$"):
        create_model("cifar_cnn", width=0)
    with pytest.raises(ConfigError, match=r"^epsilon: expected a finite number >= 0, found -0\.1$"):
        FGSMRandomStart(-0.1)
    smoothing = r"^label_smoothing: expected a number in \[0, 1\], found 2$"
    with pytest.raises(ConfigError, match=smoothing):
        DefenseObjective(label_smoothing=2)
    with pytest.raises(ConfigError, match=r"^crop_flip padding: expected an int >= 0, found 1\.5$"):
        crop_flip_params(4, padding=1.5)  # type: ignore[arg-type]
