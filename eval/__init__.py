"""Evaluation layer: the sweep planner, runner, workers and record store, replay of saved trees,
and the report (curves, Pareto frontier, scaling fits, plots). Imports only the layers below it:
rebase core and tasks, reward_models and strategies."""
