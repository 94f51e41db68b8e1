"""The send path: claim due jobs, coalesce them into provider calls, call, settle, resolve unknown fates.

- `claim`: which queued jobs go next (express first, then oldest) and the conditional claim.
- `calls`: how the claimed recipients are grouped into provider calls, per API.
- `dispatch`: one submission round (claim, call, record), the use case behind `smsq.send`.
- `settle`: the state each job's recipients imply after a round or a lookup.
- `resolve`: a call whose fate is unknown is looked up at the provider, never blindly resent.
- `submissions`: the one owner of every job and submission state transition.
"""
