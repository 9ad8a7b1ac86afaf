"""Adaptive search and early termination: they sit BESIDE the work queue.

``space``      W&B parameters -> the sampler's search space (pure)
``adaptive``   method: bayes with Optuna's ask-and-tell: asked when a slot frees, told each
               finished configuration; its history rebuilt from the run's own records
``hyperband``  W&B's hyperband stopping rule, fed with live metric lines (pure)
``savings``    how many container-seconds early termination saved (pure)

Backends know nothing of these: the search fills the queue when it runs dry, the stopper
reads the live lines a backend exposes and asks it to stop a trial.
"""
