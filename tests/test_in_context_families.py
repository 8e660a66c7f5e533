"""Every supervised family reaches evaluate and report through one table."""

from types import SimpleNamespace

import pytest

from snn_icl.envs.family import SUPERVISED
from snn_icl.experiments.in_context_families import FAMILIES, family_of, register


def test_every_supervised_family_has_an_experiments_entry():
    assert set(FAMILIES) == set(SUPERVISED)
    for fam in FAMILIES.values():
        keys = [k for k, _ in fam.measures]
        assert len(keys) == len(set(keys)) and fam.panels and fam.x_label


def test_an_unknown_family_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="'nope' has no evaluation.*icl_bursty"):
        family_of(SimpleNamespace(env=SimpleNamespace(family="nope")))


def test_a_family_is_registered_once():
    with pytest.raises(ValueError, match="already"):
        register("icl_bursty", FAMILIES["icl_regression"])
    register("icl_bursty", FAMILIES["icl_bursty"])  # the same entry again is harmless
