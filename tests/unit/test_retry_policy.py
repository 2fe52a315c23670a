from shared.errors import PermanentError, TransientError
from shared.jobtypes import RetryPolicy


def test_transient_errors_retry_until_attempts_run_out():
    policy = RetryPolicy(max_attempts=3)
    assert policy.decide(TransientError("x"), attempt=1) == "retry"
    assert policy.decide(TransientError("x"), attempt=2) == "retry"
    assert policy.decide(TransientError("x"), attempt=3) == "fail"


def test_permanent_errors_fail_at_once():
    assert RetryPolicy(max_attempts=5).decide(PermanentError("gone"), attempt=1) == "fail"


def test_backoff_grows_exponentially_within_jitter_and_is_capped():
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=10.0, jitter_ratio=0.25)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 10.0)]:
        for _ in range(50):
            assert base * 0.75 <= policy.delay_s(attempt) <= base * 1.25


def test_retry_after_given_by_the_error_wins():
    assert RetryPolicy().delay_s(1, TransientError("slow down", retry_after_s=42)) == 42
