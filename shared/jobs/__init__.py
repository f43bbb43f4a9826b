"""Queued jobs, for the patterns that answer 202 (async, batch).

* :mod:`shared.jobs.contract`: jobs as clients see them: the 202 answer, the job resource,
  its statuses and errors, the queue's settings.
* :mod:`shared.jobs.async_queue`: RQ jobs submitted and read from the event loop.
* :mod:`shared.jobs.worker`: workers that prove they are alive and rescue dead workers' jobs.
* :mod:`shared.jobs.batches`: several queued jobs run in one worker turn.
* :mod:`shared.jobs.callbacks`: a job's end delivered to the URL its submitter gave.
* :mod:`shared.jobs.input_contract`: the model's input contract, for an api that checks
  requests while its workers run the model.
"""
