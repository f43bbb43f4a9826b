"""Mechanisms that several patterns share: calls one after another under one deadline
(:mod:`shared.mechanisms.chain`: serial, prep-pred) and images turned into the digits model's
input (:mod:`shared.mechanisms.digit_images`: prep-pred, data-cache). Coalescing is in ``v2``.
"""
