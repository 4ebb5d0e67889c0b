#!/usr/bin/env python3
"""Thin entry point: ``python run_digest.py COMMAND ...`` runs the digest command line."""

from digest.cli import main

if __name__ == "__main__":
    main()
