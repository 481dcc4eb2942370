"""Intermediate storages: where a step's outputs wait for the steps that need them."""
