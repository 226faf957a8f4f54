# synthetic registers the broad prior's skills (lmmcl.data.broad_skills builds on its helpers): loading
# it first lets either module be imported first.
from . import synthetic as _synthetic  # noqa: F401
