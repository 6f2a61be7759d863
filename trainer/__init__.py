"""Training stage: data loading, the multi-task model, the train loop, evaluation and its report."""
