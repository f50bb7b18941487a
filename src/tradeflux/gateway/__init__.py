"""The ways in: reference data files, FIX drop copy and HTTP trade capture."""
