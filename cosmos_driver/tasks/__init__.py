"""The Invoke namespace: the same tasks for `invoke …` in a checkout and the `cosmos` command."""

from invoke import Collection

from cosmos_driver.tasks import jobs, lab

namespace = Collection()
namespace.add_task(jobs.infer)
namespace.add_task(jobs.demo)
namespace.add_collection(Collection.from_module(lab), name="lab")
