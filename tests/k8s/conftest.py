"""Fixtures for the tests of k8s/; the helpers are in kube.py."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kube import TARGETS  # noqa: E402


@pytest.fixture(params=TARGETS)
def target(request):
    """Each kustomization that is applied as it is: the base and every overlay."""
    return request.param
