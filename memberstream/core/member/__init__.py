"""A member's events applied to the member's state, one concern per module: membership
tiers, interest, anomalies, the profile; :mod:`memberstream.core.member.processor`
composes them."""
