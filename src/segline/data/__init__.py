"""Torch datasets over a case store: 2D slices, 2.5D stacks, 3D patches."""
