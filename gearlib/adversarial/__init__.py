"""Adversarial training with an in-situ accuracy-robustness knob: FLOAT, SMART and their baselines (PGD-AT, OAT).

Layers, models, masks, training losses and cost models; attacks live in gearlib.attacks.
"""
