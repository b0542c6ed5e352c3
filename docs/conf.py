"""Sphinx configuration of the rt2_ros documentation (MyST Markdown).

Built by rosdoc2 (``rosdoc2 build --package-path .``, what docs.ros.org runs), which
executes this file inside its own wrapping conf.py, adds autodoc, intersphinx, myst_parser
and the ROS theme, runs sphinx-apidoc over ``rt2_ros/`` (the ``modules`` page) and
generates the message pages (``interfaces/``). ``scripts/build_docs.sh`` runs it with every
warning an error.
"""

import os
import sys


def _repo_root() -> str:
    """The checkout whose ``rt2_ros`` is documented. rosdoc2 runs this file with ``exec``
    from a copy, so ``__file__`` is not ours: scripts/build_docs.sh says it in RT2_DOCS_ROOT;
    otherwise the working directory (rosdoc2 is run from the package) or this file's parent."""
    here = os.path.dirname(os.path.abspath(globals().get("__file__", "conf.py")))
    for cand in (os.environ.get("RT2_DOCS_ROOT"), os.getcwd(), os.path.dirname(here)):
        if cand and os.path.isfile(os.path.join(cand, "package.xml")) and os.path.isdir(os.path.join(cand, "rt2_ros")):
            return os.path.abspath(cand)
    raise RuntimeError("cannot find the rt2_ros checkout: set RT2_DOCS_ROOT")


RT2_ROOT = _repo_root()
sys.path.insert(0, RT2_ROOT)
sys.path.insert(0, os.path.join(RT2_ROOT, "docs", "_ext"))

project = "rt2_ros"
author = "rt2_ros maintainers"
copyright = "The rt2_ros contributors. License: Apache-2.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the docstrings are Google style (Args:, Returns:, Raises:)
    "sphinx_rtd_theme",
    "rt2_docs",  # docs/_ext/rt2_docs.py: generated parameter tables, public-API docstring check
]

root_doc = "index"
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
# rosdoc2 writes a default index.rst and pages for README/LICENSE ("standard documents")
# beside ours; our index.md replaces them (the README's content lives in these pages).
exclude_patterns = [
    "index.rst",
    "standards.rst",
    "standard_docs/**",
    "__readme_include.rst",
    "_ext/**",
    "README.md",
    "sphinx_output/**",
]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Every cross-reference must resolve (a broken :class: or a link to a missing page fails
# the build); these are the outside names the docstrings mention without an inventory.
nitpicky = True
_OUTSIDE = (
    "np|numpy|torch|transformers|rclpy|pydantic|pydantic_core|annotated_types|websockets|PIL|pybullet|msgpack|ray|"
    "datasets|peft|pyarrow|tokenizers|scipy|accelerate|starlette|mcap|mcap_ros2|launch|launch_ros|"
    "rcl_interfaces|sensor_msgs|geometry_msgs|std_msgs|std_srvs|builtin_interfaces|moveit_msgs|control_msgs|"
    "visualization_msgs|tf2_ros|tf2_msgs|cv_bridge|rt2_ros\\.msg|"
    # the standard library (no inventory offline)
    "abc|argparse|array|asyncio|collections|concurrent|contextlib|dataclasses|enum|hmac|io|json|logging|"
    "multiprocessing|os|pathlib|queue|random|re|selectors|signal|socket|ssl|ssl_module|subprocess|tempfile|"
    "threading|types|typing|collections\\.abc"
)
nitpick_ignore_regex = [
    # Names from outside the package: no inventory to resolve them against offline.
    (r"py:.*", rf"({_OUTSIDE})(\..*)?"),
    # Bare names of outside types in signatures (``Path``, rclpy's ``Node``, torch's ``Module``).
    (r"py:class", r"(Path|Node|Module|Tensor|ndarray|Enum|IntEnum|ABC|Event|Thread|LogRecord|Handler|Namespace)"),
    # pydantic constraints inside Annotated[...] signatures (``Ge(ge=0)``).
    (r"py:class", r"(ge|gt|le|lt|min_length|max_length)=.*"),
    # Private helpers and TypeVars are not documented.
    (r"py:.*", r"(.*\.)?_[A-Za-z].*"),
    (r"py:class", r"rt2_ros\.ros\.params\.M"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

html_theme = "sphinx_rtd_theme"
html_title = "rt2_ros"
html_theme_options = {"collapse_navigation": False, "navigation_depth": 3}

rosdoc2_settings = {
    # rosdoc2 would mock every exec_depend it cannot import; what we import, we have.
    "enable_intersphinx": False,
    "automatically_extend_intersphinx_mapping": False,
}

# rosdoc2 runs sphinx-apidoc into the source directory's top level; move those pages into
# api/ so the top level holds only the hand-written pages (index.md's glob toctree lists
# every docs/*.md page, including those added later).
_SRC = os.path.dirname(os.path.abspath(globals().get("__file__", "conf.py")))
if os.path.isfile(os.path.join(_SRC, "modules.rst")):
    os.makedirs(os.path.join(_SRC, "api"), exist_ok=True)
    for _name in os.listdir(_SRC):
        if _name == "modules.rst" or (_name.startswith("rt2_ros") and _name.endswith(".rst")):
            os.replace(os.path.join(_SRC, _name), os.path.join(_SRC, "api", _name))
