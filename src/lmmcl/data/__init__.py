"""Every dataset split the workflow reads, in one parquet data contract (``contract``).

Where each kind of data lives (imports go down this list, never up):

* ``contract``       the data contract: id, image, question, answer, task (+ extra columns)
* ``spec``, ``draw``  a skill's description (``SkillSpec``) and the PIL drawing helpers
* ``synthetic``      the study's skills: the default's five targets, three held-out skills, ``syn_prior``
* ``broad_skills``, ``vision_skills``  the research overlays' base-only priors
* ``declared``       your own skills, declared in a config's ``skills:`` (docs/own_skill.md)
* ``skills``         the one registry of all three kinds (``SKILLS``, ``generate``, ``write_skill``)
* ``sources``        converters of the study's real datasets (registry/datasets.yaml, docs/data.md)
"""
