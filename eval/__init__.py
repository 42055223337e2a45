"""Evaluation layer: tasks (datasets), grading, the sweep runner and store, and the report (curves,
Pareto frontier, scaling fits, plots). Imports only the layers below it: rebase core, reward_models
and strategies."""
