//! Running one task outside a graph and the cache ([`run_detached`]), for a
//! caller that keeps its own record of outputs: the pipeline's delta path
//! re-runs the few tasks an edit reaches and compares their output digests
//! with those of the previous build. The task sees exactly what the engine
//! would give it: its declared files (read now) and the dependency outputs
//! the caller passes, in declaration order.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::task::{Inputs, RunContext, Task};
use crate::TaskError;

/// Runs `task` with `dependencies` as its dependency outputs. Nothing is
/// cached; a panic is a failure, as in a graph.
pub fn run_detached(task: &dyn Task, dependencies: &[Arc<[u8]>]) -> Result<Vec<u8>, TaskError> {
    let mut inputs = Inputs::default();
    task.inputs(&mut inputs);
    let mut files: Vec<(String, Arc<[u8]>)> = Vec::with_capacity(inputs.files.len());
    for input in inputs.files {
        let bytes = std::fs::read(&input.path).map_err(|source| TaskError::InputFile {
            name: input.name.clone(),
            path: input.path.clone(),
            source,
        })?;
        files.push((input.name, Arc::from(bytes)));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = files.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(TaskError::DuplicateInput {
            name: pair[0].0.clone(),
        });
    }
    let context = RunContext {
        dependencies,
        files: &files,
    };
    match catch_unwind(AssertUnwindSafe(|| task.run(&context))) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(TaskError::Run(error)),
        Err(panic) => Err(crate::scheduler::panicked(panic)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Concat {
        file: std::path::PathBuf,
    }

    impl Task for Concat {
        fn kind(&self) -> &'static str {
            "concat"
        }
        fn version(&self) -> u32 {
            1
        }
        fn identity(&self) -> &str {
            "concat"
        }
        fn inputs(&self, inputs: &mut Inputs) {
            inputs.file("f", self.file.clone());
        }
        fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, crate::RunError> {
            let mut out = context.file("f").expect("declared").to_vec();
            for dependency in context.dependencies() {
                out.extend_from_slice(dependency);
            }
            if out.is_empty() {
                panic!("nothing to concatenate");
            }
            Ok(out)
        }
    }

    #[test]
    fn a_detached_task_reads_its_declared_files_and_the_given_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"ab").unwrap();
        let task = Concat { file: file.clone() };
        let output = run_detached(&task, &[Arc::from(&b"cd"[..])]).unwrap();
        assert_eq!(output, b"abcd");

        std::fs::write(&file, b"").unwrap();
        match run_detached(&task, &[]) {
            Err(TaskError::Panicked { message }) => assert!(message.contains("nothing")),
            other => panic!("expected a panic as failure, got {other:?}"),
        }
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            run_detached(&task, &[]),
            Err(TaskError::InputFile { .. })
        ));
    }
}
