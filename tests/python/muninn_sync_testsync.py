"""The Python synchronizer that a shared archive configuration still names
in `module`, beside muninn-sync's `plugin` key.

Python muninn imports the module of every synchronizer listed in
`[archive] synchronizers` whenever it opens the archive, for any tool, so
the module must import; muninn-sync loads the Rust plugin named by `plugin`
instead. This one only shows that muninn's tools get that far; it is never
run.
"""


class _NotRun(object):
    def __init__(self, config):
        self.config = config

    def sync(self, archive, product_types=None, start=None, end=None, force=False):
        raise RuntimeError("the tests sync with muninn-sync's jsonl plugin, not with Python muninn")


def synchronizer(config):
    return _NotRun(config)
