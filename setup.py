"""What setup.cfg cannot say: the bot client's package ``poswatch`` lives in client/.

client/ is its own distribution (position-watchdog-client, ``redis`` only, for bots' venvs); the
daemon ships the same package inside its own distribution, so ``pip install .`` from a clone is
complete without an index that has the client. Everything else is in setup.cfg.
"""

from setuptools import find_packages, setup

setup(
    # poswatch.lua holds data only (the Lua scripts); listed so that setuptools ships it as such
    packages=[*find_packages(include=["watchdog", "watchdog.*"]), "poswatch", "poswatch.lua"],
    package_dir={"poswatch": "client/poswatch"},
)
