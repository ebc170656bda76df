"""The ground floor: error base, model plumbing, shared statistics and atomic files.

Every room may import it; it imports nothing else of the project.
"""
