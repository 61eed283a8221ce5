"""Operations: readiness, queue depths and the bucket's notification configuration."""
