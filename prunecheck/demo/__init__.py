"""The embedded demo (SPEC 6): what ``pytest suites/`` runs when there is no config file.

- :mod:`prunecheck.data.demo`: a generated, deterministic 10-class 32x32 RGB
  dataset (``train`` / ``test`` / ``ood`` splits).
- :mod:`prunecheck.demo.net`: ``DemoNet``, a small CNN with BatchNorm and dropout.
- :mod:`prunecheck.demo.zoo`: parent, reference, ensemble members and a family
  pruned with :func:`prunecheck.pruning.iterative_prune` (global weight
  magnitude) with pre-fine-tune snapshots, and the deployed snapshot fine-tuned
  again on a long-tailed split (one rare class); :mod:`prunecheck.demo.shipped`
  ships it with the package.
- :mod:`prunecheck.demo.settings`: the ``Settings`` over that zoo.

Importing this package imports torch; the pytest plugin imports it lazily.
"""

from prunecheck.data.demo import DEMO_CLASSES, generate_demo_images, load_demo_dataset
from prunecheck.demo.net import DemoNet
from prunecheck.demo.settings import demo_settings
from prunecheck.demo.zoo import ZOO_VERSION, ZooConfig, ensure_zoo, load_zoo_model

__all__ = [
    "DEMO_CLASSES", "DemoNet", "ZOO_VERSION", "ZooConfig", "demo_settings", "ensure_zoo",
    "generate_demo_images", "load_demo_dataset", "load_zoo_model",
]
