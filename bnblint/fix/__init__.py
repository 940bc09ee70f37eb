"""Applying fixes: CST edits in one transformer pass, and the text edits they amount to."""
