"""Export stage: checkpoint → Optimum ONNX export → validation → int8 → versioned bundle → ``models/current``."""
