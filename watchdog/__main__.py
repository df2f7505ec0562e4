"""`python -m watchdog` runs the same CLI as the `position-watchdog` console script."""

from watchdog.cli import main

if __name__ == "__main__":
    main()
