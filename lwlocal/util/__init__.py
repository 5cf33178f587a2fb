"""Small helpers every layer uses: errors, paths, progress events, muting native output."""
