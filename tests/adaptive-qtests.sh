# Sourced by tests/test-qtest.sh and tests/test-sanitizers.sh: the -p
# arguments that select migration-test's adaptive tests (GLib's -p needs
# each leaf path; keep in step with tests/qtest/migration/adaptive-tests.c).
adaptive_qtest_paths=""
for t in needs-postcopy busy-measuring fcm/reader model/reader model/writer \
         guarded/mixed postcopy/recovery/plain; do
    adaptive_qtest_paths="$adaptive_qtest_paths -p /x86_64/migration/adaptive/$t"
done
