import { ApplicationFailure } from '@temporalio/common';

/** The named failure a promise rejects with; fails the test if it resolves or rejects with something else. */
export async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}
