#!/bin/sh
# Installs what the browser tests (tests/test_report_browser.py) need: Debian's chromium and
# chromium-driver. Never fails: where they cannot be installed (not root, no apt-get, no network)
# it says why and the tests skip with the same reason. selenium comes with `pip install -e ".[test]"`.
#
#   sh tests/browser/install.sh
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "browser tests: chromium and chromedriver already installed"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "browser tests: not root, chromium + chromium-driver not installed (they will be skipped)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser tests: no apt-get, chromium + chromium-driver not installed (they will be skipped)"
    exit 0
fi
if DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; then
    echo "browser tests: installed $(chromium --version 2>/dev/null) and chromedriver"
else
    echo "browser tests: apt-get could not install chromium + chromium-driver (they will be skipped)"
fi
exit 0
