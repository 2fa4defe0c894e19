"""The Invoke namespace: the same tasks for `invoke …` in a checkout and the `cosmos` command."""

from invoke import Collection

from cosmos_driver.tasks import checkpoints, enhance, jobs, lab, provision, runs, ui, video

namespace = Collection()
for body in (
    jobs.infer,
    jobs.demo,
    enhance.enhance,
    provision.setup,
    provision.health,
    runs.status,
    runs.runs,
    runs.show,
    runs.logs,
    runs.kill,
    video.inspect,
    video.prepare,
    ui.ui,
    ui.report,
):
    namespace.add_task(body)
namespace.add_collection(Collection.from_module(lab), name="lab")
namespace.add_collection(Collection.from_module(checkpoints), name="checkpoints")
