import type { Reporter } from "vitest/reporters"
import { defineConfig } from "vitest/config"

type Task = {
  readonly type: string
  readonly mode?: string
  readonly result?: { readonly state?: string } | undefined
  readonly tasks?: ReadonlyArray<Task>
}

/** Ends the run with one plain line, `N passed, N failed, N skipped`, that any CI can read. */
const plainSummary: Reporter = {
  onFinished(files = []) {
    let passed = 0
    let failed = 0
    let skipped = 0
    const visit = (task: Task): void => {
      if (task.tasks !== undefined) {
        // A file that failed to load has no tests but must still count as a failure.
        if (task.tasks.length === 0 && task.result?.state === "fail") failed++
        task.tasks.forEach(visit)
        return
      }
      if (task.type !== "test") return
      const state = task.result?.state
      if (state === "pass") passed++
      else if (state === "fail") failed++
      else skipped++
    }
    files.forEach(visit)
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ["default", plainSummary]
  }
})
