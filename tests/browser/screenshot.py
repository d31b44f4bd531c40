"""python tests/browser/screenshot.py PAGE.html OUT.png [--section map] [--height 1000]: a
screenshot of a report page in headless Chromium, scrolled to a section (its ``id`` without the
``section-`` prefix, e.g. ``map``, ``clusters``, ``anomalies``); prints the console errors."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--section", default=None)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args(argv)
    from browser.chromium import chromium, console_errors

    with chromium([f"--window-size={args.width},{args.height}"]) as driver:
        driver.get(args.page.resolve().as_uri())
        if args.section:
            driver.execute_script(f"document.getElementById('section-{args.section}').scrollIntoView();")
        time.sleep(0.5)
        driver.save_screenshot(str(args.out))
        errors = console_errors(driver)
    for error in errors:
        print("console error:", error)
    print(f"{args.out} ({len(errors)} console error(s))")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
